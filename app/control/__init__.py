"""The controller: it reads load every tick and decides what the fleet slows down."""

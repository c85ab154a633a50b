# The image every gamesched service runs (see docker-compose.yml).
FROM python:3.11-slim
COPY --from=ghcr.io/astral-sh/uv:latest /uv /usr/local/bin/uv
WORKDIR /srv/gamesched
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --group flower --no-install-project
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
COPY celeryconfig.py alembic.ini ./
RUN uv sync --frozen --no-dev --group flower
ENV PATH="/srv/gamesched/.venv/bin:$PATH"
CMD ["gamesched", "--help"]

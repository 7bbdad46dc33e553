# The shop's image: what running needs (no test extras), as a non-root user.
# Build: docker build -t storefront .   Run with compose.yaml (PostgreSQL + Redis), see docs/deploy.md.

# ---- build: a wheel of the shop (templates, migrations, demo files included) -----------------
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bot bot
COPY commerce commerce
COPY scheduler scheduler
COPY templates templates
COPY migrations migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- run ------------------------------------------------------------------------------------
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --home-dir /app --uid 10001 storefront
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER storefront
WORKDIR /app
# Listen on every interface inside the container; the reverse proxy (TLS on 443) forwards here.
ENV STOREFRONT_SERVER__HOST=0.0.0.0 \
    STOREFRONT_SERVER__PORT=8080 \
    STOREFRONT_SERVER__LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
# Migrates the database, then serves (one worker unless --workers N; several need redis.url).
CMD ["storefront", "serve"]

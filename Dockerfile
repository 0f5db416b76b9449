# vhod as a container image (docs/container.md):
#   docker build -t vhod .
#   docker run -d -p 8888:8888 -v vhod-data:/data --read-only --tmpfs /tmp vhod
#
# BASE_IMAGE is any Debian-like image with python3 (3.11 or newer) and its venv module;
# both stages must use the same one, since the virtualenv links to its interpreter.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# Set at build time only, to install from a mirror or a wheel folder (deploy/podman-proof).
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python3 -m venv /opt/vhod
# The pinned requirements first: this layer is rebuilt only when they change.
COPY requirements.txt ./
RUN /opt/vhod/bin/pip install --no-compile -r requirements.txt
COPY pyproject.toml README.md server.py openapi.yaml config.yaml ./
COPY core core
COPY handlers handlers
COPY providers providers
COPY storage storage
# Compiled now: the running container's root filesystem may be read-only.
RUN /opt/vhod/bin/pip install --no-deps . \
    && /opt/vhod/bin/python -m compileall -q /opt/vhod

FROM ${BASE_IMAGE}
# A user of its own, with no login and no home but the data volume.
RUN groupadd --gid 10001 vhod \
    && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin vhod \
    && mkdir -m 0700 /data \
    && chown 10001:10001 /data
COPY --from=build /opt/vhod /opt/vhod
# Everything vhod writes (the SQLite database, generated key files) goes to /data; settings
# come from VHOD_* variables, or from a file that VHOD_CONFIG names (a mounted secret).
ENV PATH=/opt/vhod/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VHOD_SERVER__HOST=0.0.0.0 \
    VHOD_SERVER__PORT=8888 \
    VHOD_SERVER__DATA_DIR=/data \
    VHOD_STORAGE__URL=sqlite:////data/vhod.db
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8888
# No curl in a slim image: the interpreter asks /healthz itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VHOD_SERVER__PORT', '8888'), timeout=4)"]
ENTRYPOINT ["vhod"]

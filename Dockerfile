# The sandbox in a small image: a virtualenv holding the wheel and its dependencies, on a Python base,
# with the postgresql extra (psycopg, its binary wheel carrying libpq), so `--db postgresql://...` works.
#   docker build -t mailsandbox .
#   docker run -p 1025:1025 -p 8025:8025 -v mailsandbox:/data mailsandbox
# BASE is any image with python3 (and its venv module): python:3.12-slim by default; CI passes a Debian
# base it made itself. WHEELS names a folder of wheels inside the build context to install from, offline,
# instead of asking PyPI (it must hold the postgresql extra's wheels too: .ci/docker-base builds them).
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
ARG WHEELS=
WORKDIR /src
# .dockerignore lets in only what the wheel needs (and a wheel folder, if there is one).
COPY . .
RUN python3 -m venv /opt/mailsandbox \
 && if [ -n "$WHEELS" ]; then \
      /opt/mailsandbox/bin/pip install --no-cache-dir --no-index --find-links "$WHEELS" 'mailsandbox[postgresql]'; \
    else \
      /opt/mailsandbox/bin/pip install --no-cache-dir '.[postgresql]'; \
    fi \
 && /opt/mailsandbox/bin/pip uninstall --yes --quiet pip

FROM ${BASE}
COPY --from=build /opt/mailsandbox /opt/mailsandbox
# A system user whose home is not the data volume, so /data holds only the database and the certificate.
RUN useradd --system --uid 1000 --user-group --no-create-home --home-dir /nonexistent mailsandbox \
 && mkdir /data && chown mailsandbox:mailsandbox /data
USER mailsandbox
VOLUME /data
ENV PATH=/opt/mailsandbox/bin:$PATH MAILSANDBOX_DATA_DIR=/data PYTHONDONTWRITEBYTECODE=1
# Without credentials the sandbox warns at start: anyone who reaches these ports reads every message. To
# lock a shared instance down, mount an htpasswd-style file (user:password or `htpasswd -nbB user pass`
# lines) and set, for example:
#   docker run -v ./ui-users:/run/secrets/ui-users:ro \
#     -e MAILSANDBOX_UI_AUTH_FILE=/run/secrets/ui-users \      web UI and API: basic auth
#     -e MAILSANDBOX_API_TOKEN=... \                            API clients: Authorization: Bearer ...
#     -e MAILSANDBOX_SMTP_AUTH=@/run/secrets/smtp-users \       SMTP/POP3/IMAP: user:password lines
#     -e MAILSANDBOX_ALLOWED_HOSTS=mail.ci.example \            names the UI is browsed by (localhost and
#     mailsandbox                                                 the container's own names always work)
# /livez and /readyz stay open for health checks.
EXPOSE 1025 8025 1110 1143 5353/udp 5353/tcp
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8025/readyz', timeout=2)"]
# Inside a container the ports must be reachable from the host, so listen on all interfaces.
CMD ["mailsandbox", "serve", "--smtp", "0.0.0.0:1025", "--http", "0.0.0.0:8025", "--pop3", "0.0.0.0:1110", \
     "--imap", "0.0.0.0:1143", "--dns", "0.0.0.0:5353"]

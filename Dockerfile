# Small image: the wheel and its pure-Python dependencies on a slim Python base.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sandbox ./sandbox
COPY web ./web
COPY pytest_plugin ./pytest_plugin
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 1000 --home-dir /data --create-home mailsandbox
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER mailsandbox
VOLUME /data
ENV MAILSANDBOX_DATA_DIR=/data
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8025/livez', timeout=3)"
# Inside a container the ports must be reachable from the host, so listen on all interfaces. Without
# credentials the sandbox warns at start: anyone who reaches these ports reads every message. To lock a
# shared instance down, mount an htpasswd-style file (user:password or `htpasswd -nbB user pass` lines)
# and set, for example:
#   docker run -v ./ui-users:/run/secrets/ui-users:ro \
#     -e MAILSANDBOX_UI_AUTH_FILE=/run/secrets/ui-users \      web UI and API: basic auth
#     -e MAILSANDBOX_API_TOKEN=... \                            API clients: Authorization: Bearer ...
#     -e MAILSANDBOX_SMTP_AUTH=@/run/secrets/smtp-users \       SMTP/POP3/IMAP: user:password lines
#     -e MAILSANDBOX_ALLOWED_HOSTS=mail.ci.example \            names the UI is browsed by (localhost and
#     mailsandbox                                                 the container's own names always work)
# /livez and /readyz stay open for health checks.
EXPOSE 1025 8025 1110 1143 5353/udp 5353/tcp
CMD ["mailsandbox", "serve", "--smtp", "0.0.0.0:1025", "--http", "0.0.0.0:8025", "--pop3", "0.0.0.0:1110", \
     "--imap", "0.0.0.0:1143", "--dns", "0.0.0.0:5353"]

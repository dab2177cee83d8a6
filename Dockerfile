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
# Inside a container the ports must be reachable from the host, so listen on all interfaces.
EXPOSE 1025 8025 1110 1143 5353/udp 5353/tcp
CMD ["mailsandbox", "serve", "--smtp", "0.0.0.0:1025", "--http", "0.0.0.0:8025", "--pop3", "0.0.0.0:1110", \
     "--imap", "0.0.0.0:1143", "--dns", "0.0.0.0:5353"]

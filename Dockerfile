# hf-gateway: Sign in with Hugging Face in front of any web tool.
#   docker build -t hf-gateway .
#   docker run -p 8080:8080 -v $PWD/gateway.yaml:/etc/hf-gateway/gateway.yaml:ro \
#     -e OAUTH_CLIENT_ID -e OAUTH_CLIENT_SECRET -e GATEWAY_SECRET hf-gateway

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="hf-gateway" \
      org.opencontainers.image.description="Sign in with Hugging Face reverse-proxy gateway"
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --home-dir /nonexistent --shell /usr/sbin/nologin gateway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/gateway.example.yaml /etc/hf-gateway/gateway.example.yaml
ENV HF_GATEWAY_CONFIG=/etc/hf-gateway/gateway.yaml \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/_gateway/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["hf-gateway"]
CMD ["run"]

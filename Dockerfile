# hf-gateway: Sign in with Hugging Face in front of any web tool.
#   docker build -t hf-gateway .
#   docker run -p 8080:8080 -e OAUTH_CLIENT_ID -e OAUTH_CLIENT_SECRET -e GATEWAY_SECRET \
#     -e HF_ORG -e UPSTREAM_URL hf-gateway
# The default config (config/image/gateway.yaml) reads those five variables; mount your own
# over /etc/hf-gateway/gateway.yaml for more. A playground with Redis, a sample tool and a
# fake Hugging Face: examples/compose/ (docs/deployment.md).
#
# The fake Hugging Face provider (gateway.devtools) is in the image for that playground
# only: nothing starts it unless a container's command asks for it by name.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY gateway ./gateway
COPY hf_gateway ./hf_gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="hf-gateway" \
      org.opencontainers.image.description="Sign in with Hugging Face reverse-proxy gateway"
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --home-dir /nonexistent --shell /usr/sbin/nologin gateway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/image/gateway.yaml /etc/hf-gateway/gateway.yaml
ENV HF_GATEWAY_CONFIG=/etc/hf-gateway/gateway.yaml \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080 9090
# Follows server.listen of $HF_GATEWAY_CONFIG, so a config that moves the port stays healthy.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["hf-gateway", "healthcheck"]
ENTRYPOINT ["hf-gateway"]
CMD ["run"]

#!/bin/sh
# Streamlit listens on loopback only, so the gateway on 7860 is the Space's only way in.
# Its XSRF cookie is third-party in huggingface.co's iframe and gets dropped; the gateway's
# Origin check refuses cross-site unsafe requests in its place.
set -eu
streamlit run app.py \
  --server.address=127.0.0.1 --server.port=8501 --server.headless=true \
  --server.enableXsrfProtection=false --browser.gatherUsageStats=false &
# Spaces mode: the provider, public_url, port 7860, framing by huggingface.co and
# SameSite=None cookies come from the variables hf_oauth: true makes HF set.
exec hf-gateway run

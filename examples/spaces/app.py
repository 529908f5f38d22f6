"""The guarded Streamlit app: the gateway tells it who is signed in."""

import streamlit as st

headers = st.context.headers
st.title("Acme dashboard")
st.write(f"Signed in as **{headers.get('X-Forwarded-User', 'nobody')}**")
st.caption(f"Organizations: {headers.get('X-Forwarded-Groups', '')}")

# screenpop: `docker build -t screenpop .` then
# `docker run -p 8000:8000 -e SCREENPOP_WEBHOOK_SECRET=... -e SCREENPOP_SESSION_SECRET=... \
#   -e SCREENPOP_CONFIG=/etc/screenpop/screenpop.yaml -v $PWD/screenpop.yaml:/etc/screenpop/screenpop.yaml:ro screenpop`
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY screenpop ./screenpop
COPY connectors ./connectors
COPY telephony ./telephony
COPY web ./web
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin screenpop
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV SCREENPOP_HOST=0.0.0.0 SCREENPOP_PORT=8000 PYTHONUNBUFFERED=1
USER screenpop
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
CMD ["screenpop", "serve"]

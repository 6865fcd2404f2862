# GoPay in one container: the API and its projections on the embedded PostgreSQL under /app/var.
# Point GOPAY_DATABASE_URL at a managed PostgreSQL to run without the embedded one.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 gopay
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gopay ./gopay
RUN pip install . && chown -R gopay:gopay /app

USER gopay
EXPOSE 8000
VOLUME ["/app/var"]
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/ready').status != 200)"
CMD ["gopay", "up", "--host", "0.0.0.0", "--port", "8000"]

#!/usr/bin/env bash
# Download, HERE (a machine that reaches PyPI), the wheels that benchmarks/gpu_check.sh needs on the lent
# GPU machine, which has no network: cp312 manylinux x86_64 wheels of trainflow's import chain for a
# neural run that the device image lacks (prefect, great-expectations, pydantic, skops, imbalanced-learn
# and their dependencies), plus a few small pure-Python packages it has but maybe older than our pins
# require. torch, numpy, pandas, scipy, scikit-learn, pyarrow, matplotlib, pillow, safetensors, PyYAML
# are on the device and not carried (the carried tree must stay under 64 MiB).
#
#   bash benchmarks/gpu_wheels.sh [DEST]        # DEST defaults to .whl/ (ignored via .git/info/exclude)
#
# Versions come from constraints.txt, so the device runs the versions the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-.whl}"
PY="${PYTHON_VERSION:-3.12}"   # the device's Python

# Missing on the device (its package list: /work/.library/device/KINDS.md, "Python packages already there"):
# the closure of trainflow[torch] in a venv installed with constraints.txt, extras included (greenlet comes
# from prefect's sqlalchemy[asyncio]).
MISSING="aiosqlite alembic altair amplitude-analytics annotated-types apprise asgi-lifespan asyncpg beartype
burner-redis cachetools cffi coolname cronsim cryptography cyclopts dateparser docker docstring-parser
exceptiongroup fastapi graphviz great-expectations greenlet griffe griffecli griffelib h2 hpack hyperframe
imbalanced-learn jinja2-humanize-extension jsonpatch jsonpointer jsonschema jsonschema-specifications mako
marshmallow mistune oauthlib opentelemetry-api orjson pendulum prefect prettytable py-key-value-aio pycparser
pydantic pydantic-core pydantic-extra-types pydantic-settings pydocket python-dotenv python-json-logger
python-slugify pytz readchar redis referencing requests-oauthlib rfc3339-validator rich-rst rpds-py ruamel-yaml
semver sklearn-compat skops sniffio sqlalchemy starlette text-unidecode toml typing-inspection tzdata tzlocal
uncalled-for uvicorn wcwidth websockets whenever"
# On the device, but our pins need recent versions (pydantic: typing-extensions>=4.16; prefect: certifi, rich,
# anyio, click; pydocket: typer; altair: narwhals): small, pure Python, so carried to be sure.
NEWER="typing-extensions certifi anyio click rich typer humanize pluggy cloudpickle narwhals"

norm() { echo "$1" | tr 'A-Z_.' 'a-z--'; }
pin() {  # NAME -> NAME==VERSION from constraints.txt
  local want; want=$(norm "$1")
  while IFS='=' read -r name _ version; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    if [[ "$(norm "$name")" == "$want" ]]; then echo "$1==$version"; return; fi
  done < constraints.txt
  echo "gpu_wheels.sh: $1 is not pinned in constraints.txt" >&2; exit 2
}

specs=()
for name in $MISSING $NEWER; do specs+=("$(pin "$name")"); done
mkdir -p "$DEST"
if [[ "$DEST" != /* ]] && git rev-parse --git-dir >/dev/null 2>&1; then  # keep the wheels out of git status
  exclude="$(git rev-parse --git-path info/exclude)"
  grep -qx "/${DEST#./}/" "$exclude" 2>/dev/null || echo "/${DEST#./}/" >> "$exclude"
fi
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$DEST" "${specs[@]}"
echo "gpu_wheels.sh: $(ls "$DEST"/*.whl | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $DEST"

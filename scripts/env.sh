# Sourced by the scripts: which libtorch the Rust build links. A user's own LIBTORCH wins;
# otherwise the torch in the project's .venv (PyPI torch 2.11.0, the build tch 0.24 expects).
if [ -z "${LIBTORCH:-}" ]; then
  LIBTORCH="$(.venv/bin/python -c 'import pathlib, torch; print(pathlib.Path(torch.__file__).parent)')"
fi
export LIBTORCH

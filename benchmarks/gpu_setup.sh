# Source this on the GPU machine, from the repository root:  . benchmarks/gpu_setup.sh
# Installs the carried wheels (.whl/: RecBole 1.2.1 and the few pure-Python packages it needs that
# the image lacks) and a wheel of this checkout, all without dependencies, into $SITE, and puts
# $SITE on PYTHONPATH. The image's own torch, numpy, pandas and scipy are used as they are; ray is
# never installed (recbole_ext does not import it).
SITE=${SITE:-/tmp/site}
_whl_dir=$(mktemp -d /tmp/recbole_ext_wheel.XXXXXX)
python3 -m pip wheel -q --no-deps --no-build-isolation --no-index -w "$_whl_dir" . \
  && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
       --target "$SITE" .whl/*.whl "$_whl_dir"/recbole_ext-*.whl \
  && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" \
  && python3 -P -c "import recbole, recbole_ext, sys; assert 'ray' not in sys.modules; print('setup: recbole', recbole.__version__, '+ recbole_ext', recbole_ext.__version__, 'from', recbole_ext.__file__)"

# Sourced by scripts/llama2j: adds TornadoVM's JVM flags (from the SDK's argfile) and this
# project's TornadoVM settings (tornado-config/llama2j.properties) to an array of flags.
tornado_jvm_flags() {
  local -n _flags=$1
  local jar=$2
  local home="${TORNADOVM_HOME:-/opt/tornadovm}"
  if [ ! -d "$home" ]; then
    echo "llama2j: TornadoVM engine not available: install a TornadoVM SDK and set TORNADOVM_HOME" >&2
    exit 3
  fi
  echo "llama2j: TornadoVM SDK at $home is not wired in yet" >&2
  exit 3
}

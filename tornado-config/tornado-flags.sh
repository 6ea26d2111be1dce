# Sourced by scripts/llama2j when a TornadoVM engine (--engine tornado|hybrid) or 'devices' is asked for.
# Builds the JVM command line TornadoVM needs:
#   @<TornadoVM's argfile>               module path, upgrade module path (Graal jars), exports
#   @tornado-config/llama2j-tornado.flags  this project's TornadoVM settings (no bailout, ...)
#   -cp target/llama2j.jar               the application stays on the class path (unnamed module)
# TORNADOVM_HOME defaults to /opt/tornadovm.

# tornado_jvm_flags ARRAY_NAME JAR: appends the flags to the array; exits 3 when no SDK is found.
tornado_jvm_flags() {
  local -n _flags=$1
  local jar=$2
  local cfg home argfile
  cfg="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  home="${TORNADOVM_HOME:-/opt/tornadovm}"
  if [ ! -f "$home/tornado-argfile" ]; then
    echo "llama2j: TornadoVM engine not available: install a TornadoVM SDK and set TORNADOVM_HOME (no $home/tornado-argfile)" >&2
    exit 3
  fi
  # TornadoVM's argfile puts the working directory on the module path ('--module-path .:...'), so any
  # jar lying where llama2j is started would become a module. Use a copy without it.
  argfile="${TMPDIR:-/tmp}/llama2j-tornado-argfile.$(id -u)"
  sed 's|^--module-path \.:|--module-path |' "$home/tornado-argfile" > "$argfile.$$" && mv -f "$argfile.$$" "$argfile" || exit 3
  _flags+=("@$argfile" "@$cfg/llama2j-tornado.flags" -cp "$jar")
}

#!/usr/bin/env bash
# Install fleet-agent on a device (idempotent: run it again to upgrade or repair).
#
#   sudo deploy/agent/install.sh --device-id pi-01 --label site=lab --label arch=arm64 \
#        --nats-url tls://nats.example.com:4222 --nats-ca ca.pem \
#        --bootstrap-creds bootstrap.creds --enrollment-token-file token.txt
#
# What it does (paths below are prefixed by --prefix when given):
#   1. a virtual environment /opt/fleet-agent/venv with the fleet package (--source)
#   2. the link /usr/local/bin/fleet-agent -> /opt/fleet-agent/venv/bin/fleet-agent
#   3. the system user fleet-agent (home /var/lib/fleet-agent, subordinate ids for rootless
#      podman), lingering enabled and its podman.socket enabled (its rootless podman API)
#   4. /etc/fleet-agent/config.toml from the arguments - never overwriting an existing
#      one unless --force - with, when given, the NATS CA (/etc/fleet-agent/nats-ca.pem)
#      and the bootstrap credential (/etc/fleet-agent/bootstrap.creds) beside it
#   5. /etc/systemd/system/fleet-agent.service (deploy/agent/fleet-agent.service, verbatim)
#      and the drop-in fleet-agent.service.d/10-podman-user.conf (After=user@<uid>.service)
#   6. with systemd running and no --prefix: daemon-reload, enable and (re)start the agent
# Under --prefix (a throwaway root, for tests and image builds) or --no-user, the steps
# that change the running system (user, linger, systemctl) are skipped and listed in
# <prefix>/var/lib/fleet-agent/install-skipped.txt.
#
# Options:
#   --device-id ID        this device's id (required when writing the config)
#   --label KEY=VALUE     a device label; repeatable
#   --nats-url URL        a NATS server URL; repeatable (at least one to write the config)
#   --podman-socket URL   default unix:///run/user/<uid of fleet-agent>/podman/podman.sock
#   --heartbeat-interval S  seconds between heartbeats (default 10)
#   --nats-ca FILE        the CA (PEM) of the NATS server's certificate: the agent speaks
#                         TLS only, to a server whose certificate chains to it ([nats] ca)
#   --bootstrap-creds FILE  the fleet's bootstrap.creds (from fleet-operator --auth-dir):
#                         the device makes its own key and asks to join with it
#                         ([enrollment]; docs/agent.md, "Enrollment"). Required to
#                         write a config, unless --no-auth
#   --no-auth             write a config without credentials, which only a NATS server
#                         without auth accepts (development only; warns)
#   --enrollment-token TOKEN  a bootstrap token (fleetctl token create) that approves
#                         the device by itself; needs --bootstrap-creds. Written into the
#                         config (0640), never printed
#   --enrollment-token-file FILE  the same, read from the file's first line (a secret is
#                         better kept off a command line others may see)
#   --source SPEC         what to pip install: a path (a checkout or a wheel) or a pip
#                         requirement (default: the checkout this script is in). PIP_*
#                         environment variables (PIP_NO_DEPS, PIP_INDEX_URL...) apply.
#   --python PY           the Python (>= 3.11) for the venv (default python3)
#   --prefix DIR          install under DIR instead of /
#   --no-user             do not create the user, enable lingering or touch systemd
#   --force               overwrite an existing config
set -euo pipefail

die() { echo "install.sh: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
unit_src="$here/fleet-agent.service"
agent_user=fleet-agent
device_id=""
labels=()
nats_urls=()
podman_socket=""
heartbeat=10
nats_ca=""
bootstrap_creds=""
token=""
token_file=""
source_spec=""
python=python3
prefix=""
make_user=1
force=0
no_auth=0

while (($#)); do
  case $1 in
    --device-id) device_id=${2:?--device-id needs a value}; shift 2 ;;
    --label) labels+=("${2:?--label needs KEY=VALUE}"); shift 2 ;;
    --nats-url) nats_urls+=("${2:?--nats-url needs a URL}"); shift 2 ;;
    --podman-socket) podman_socket=${2:?--podman-socket needs a URL}; shift 2 ;;
    --heartbeat-interval) heartbeat=${2:?--heartbeat-interval needs seconds}; shift 2 ;;
    --nats-ca) nats_ca=${2:?--nats-ca needs a file}; shift 2 ;;
    --bootstrap-creds) bootstrap_creds=${2:?--bootstrap-creds needs a file}; shift 2 ;;
    --enrollment-token) token=${2:?--enrollment-token needs a token}; shift 2 ;;
    --enrollment-token-file) token_file=${2:?--enrollment-token-file needs a file}; shift 2 ;;
    --source) source_spec=${2:?--source needs a path or pip spec}; shift 2 ;;
    --python) python=${2:?--python needs an interpreter}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --no-user) make_user=0; shift ;;
    --force) force=1; shift ;;
    --no-auth) no_auth=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

if [[ -n $prefix ]]; then
  mkdir -p "$prefix"
  prefix=$(cd "$prefix" && pwd)
  make_user=0
elif [[ $(id -u) -ne 0 ]]; then
  die "run as root (or use --prefix DIR to install into a throwaway root)"
fi
[[ -f $unit_src ]] || die "unit file $unit_src not found: run install.sh from a fleet checkout"
[[ -n $source_spec ]] || source_spec=$(cd "$here/../.." && pwd)
for kv in "${labels[@]}"; do
  [[ $kv == *=* && -n ${kv%%=*} ]] || die "--label '$kv' must be KEY=VALUE"
done
[[ $heartbeat =~ ^[0-9]+([.][0-9]+)?$ ]] && [[ $heartbeat != 0 ]] \
  || die "--heartbeat-interval must be a positive number of seconds, got '$heartbeat'"

for f in "$nats_ca" "$bootstrap_creds" "$token_file"; do
  [[ -z $f || ( -f $f && -r $f ) ]] || die "cannot read the file '$f'"
done
[[ -n $nats_ca ]] && nats_ca=$(cd "$(dirname "$nats_ca")" && pwd)/$(basename "$nats_ca")
[[ -n $bootstrap_creds ]] \
  && bootstrap_creds=$(cd "$(dirname "$bootstrap_creds")" && pwd)/$(basename "$bootstrap_creds")
[[ -z $token || -z $token_file ]] || die "--enrollment-token and --enrollment-token-file exclude each other"
[[ -n $token_file ]] && token=$(head -n 1 "$token_file" | tr -d '[:space:]')
[[ -z $token || -n $bootstrap_creds ]] \
  || die "an enrollment token needs --bootstrap-creds (the credential it asks to join with)"
# the form of fleet.contracts.enrollment.TOKEN_PATTERN; the value is a secret: not shown
[[ -z $token || $token =~ ^[a-z0-9]{6}\.[a-z0-9]{16,64}$ ]] \
  || die "the enrollment token must look like <6 of a-z0-9>.<16 to 64 of a-z0-9>" \
    "(as fleetctl token create prints it)"

venv=/opt/fleet-agent/venv
link=/usr/local/bin/fleet-agent
config=/etc/fleet-agent/config.toml
ca_dest=/etc/fleet-agent/nats-ca.pem
bootstrap_dest=/etc/fleet-agent/bootstrap.creds
unit=/etc/systemd/system/fleet-agent.service
dropin=/etc/systemd/system/fleet-agent.service.d/10-podman-user.conf
home=/var/lib/fleet-agent
state_dir=$home/state
skipped_file=$prefix$home/install-skipped.txt
write_config=1
[[ -f $prefix$config && $force -eq 0 ]] && write_config=0
if ((write_config)); then  # fail before the slow steps
  [[ -n $device_id ]] || die "--device-id is required to write $config"
  ((${#nats_urls[@]})) || die "at least one --nats-url is required to write $config"
  [[ -n $bootstrap_creds || $no_auth -eq 1 ]] \
    || die "no --bootstrap-creds: give the fleet's bootstrap.creds (and --nats-ca) so that" \
      "the device enrolls, or --no-auth for a development fleet without auth"
fi
[[ -z $bootstrap_creds || $no_auth -eq 0 ]] || die "--bootstrap-creds and --no-auth exclude each other"
if [[ -z $podman_socket ]] && ((make_user == 0)) && ! id "$agent_user" >/dev/null 2>&1; then
  die "user $agent_user does not exist here (and is not created with --prefix/--no-user)," \
    "so its podman socket path is unknown: pass --podman-socket URL"
fi
skipped=()
skip() { skipped+=("$1"); say "skipped: $1"; }

# -- 1. the virtual environment --------------------------------------------------------
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "--python $python: Python >= 3.11 is needed"
if [[ ! -x $prefix$venv/bin/python ]]; then
  say "creating the virtual environment $prefix$venv"
  mkdir -p "$(dirname "$prefix$venv")"
  "$python" -m venv "$prefix$venv"
fi
say "installing $source_spec into $prefix$venv"
"$prefix$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
  "$source_spec"
[[ -x $prefix$venv/bin/fleet-agent ]] \
  || die "$source_spec installed no fleet-agent console script in $prefix$venv/bin"

# -- 2. the link -------------------------------------------------------------------------
mkdir -p "$prefix$(dirname "$link")"
ln -sfn "$prefix$venv/bin/fleet-agent" "$prefix$link"

# -- 3. the user, its rootless podman socket ---------------------------------------------
if ((make_user)); then
  if ! id "$agent_user" >/dev/null 2>&1; then
    say "creating the system user $agent_user"
    subids=()
    useradd --help 2>&1 | grep -q -- --add-subids-for-system && subids=(--add-subids-for-system)
    useradd --system --user-group "${subids[@]}" --home-dir "$home" --create-home \
      --shell /usr/sbin/nologin --comment "fleet agent" "$agent_user"
  fi
  grep -q "^$agent_user:" /etc/subuid 2>/dev/null \
    || say "warning: $agent_user has no subordinate ids in /etc/subuid: rootless podman" \
      "needs them (usermod --add-subuids 200000-265535 --add-subgids 200000-265535 $agent_user)"
else
  skip "create the system user $agent_user (useradd --system --user-group --add-subids-for-system --home-dir $home)"
fi
mkdir -p "$prefix$home" "$prefix$state_dir" "$prefix$home/.config/systemd/user/sockets.target.wants"
ln -sfn /usr/lib/systemd/user/podman.socket \
  "$prefix$home/.config/systemd/user/sockets.target.wants/podman.socket"
if ((make_user)); then
  chown "$agent_user:$agent_user" "$home" "$home/.config" "$home/.config/systemd" \
    "$home/.config/systemd/user" "$home/.config/systemd/user/sockets.target.wants"
  chown -h "$agent_user:$agent_user" "$home/.config/systemd/user/sockets.target.wants/podman.socket"
  chown "$agent_user:$agent_user" "$state_dir"
  chmod 0750 "$home" "$state_dir"
else
  skip "chown $home and $state_dir to $agent_user"
fi
uid=""
id "$agent_user" >/dev/null 2>&1 && uid=$(id -u "$agent_user")
if [[ -z $podman_socket ]]; then
  [[ -n $uid ]] || die "user $agent_user does not exist here, so its podman socket path is" \
    "unknown: pass --podman-socket URL"
  podman_socket="unix:///run/user/$uid/podman/podman.sock"
fi

# -- 4. the config -----------------------------------------------------------------------
toml_str() {  # a TOML basic string
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}
if ((write_config == 0)); then
  say "kept the existing $prefix$config (pass --force to overwrite it)"
else
  mkdir -p "$(dirname "$prefix$config")"
  {
    echo "# fleet-agent configuration (written by deploy/agent/install.sh)."
    echo "# Labels may change at runtime: edit them, then: systemctl reload fleet-agent"
    echo "device_id = $(toml_str "$device_id")"
    echo
    echo "[labels]"
    for kv in "${labels[@]}"; do
      echo "$(toml_str "${kv%%=*}") = $(toml_str "${kv#*=}")"
    done
    echo
    echo "[nats]"
    urls=""
    for url in "${nats_urls[@]}"; do urls+="${urls:+, }$(toml_str "$url")"; done
    echo "urls = [$urls]"
    [[ -n $nats_ca ]] && echo "ca = $(toml_str "$ca_dest")"
    echo
    if [[ -n $bootstrap_creds ]]; then
      echo "[enrollment]"
      echo "bootstrap_credentials = $(toml_str "$bootstrap_dest")"
      [[ -n $token ]] && echo "token = $(toml_str "$token")"
      echo
    fi
    echo "[podman]"
    echo "socket = $(toml_str "$podman_socket")"
    echo
    echo "[agent]"
    echo "heartbeat_interval_s = $heartbeat"
    echo "state_dir = $(toml_str "$state_dir")"
  } > "$prefix$config.new"
  # The agent's own parser checks it (when the package's dependencies are installed),
  # reading the CA and the bootstrap credential where they are now (they are installed
  # beside the config only once it passes).
  if "$prefix$venv/bin/python" - "$prefix$config.new" \
      "$ca_dest" "${nats_ca:-$ca_dest}" "$bootstrap_dest" "${bootstrap_creds:-$bootstrap_dest}" <<'PY'
import sys
from pathlib import Path
try:
    from fleet.actors.agent.config import parse_config
except ImportError as exc:
    print(f"install.sh: config not checked by the agent's parser ({exc})")
    sys.exit(0)
from fleet.errors import ConfigError

def quoted(path: str) -> str:  # as install.sh's toml_str writes it
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'

path, pairs = Path(sys.argv[1]), sys.argv[2:]
text = path.read_text(encoding="utf-8")
for final, now in zip(pairs[::2], pairs[1::2]):
    text = text.replace(quoted(final), quoted(now))
try:
    parse_config(text, where=str(path))
except ConfigError as exc:
    print(f"install.sh: {exc}", file=sys.stderr)
    sys.exit(2)
PY
  then
    if [[ -n $nats_ca ]]; then
      install -m 0644 "$nats_ca" "$prefix$ca_dest"
      say "installed the NATS CA as $prefix$ca_dest"
    fi
    if [[ -n $bootstrap_creds ]]; then
      install -m 0640 "$bootstrap_creds" "$prefix$bootstrap_dest"
      say "installed the bootstrap credential as $prefix$bootstrap_dest" \
        "${token:+(and the enrollment token in the config)}"
    else
      say "warning: --no-auth: this device connects to NATS without credentials," \
        "which only a server without auth accepts (development only; docs/security.md)"
    fi
    chmod 0640 "$prefix$config.new"
    mv -f "$prefix$config.new" "$prefix$config"
    say "wrote $prefix$config"
  else
    rm -f "$prefix$config.new"
    die "the config built from the arguments is invalid (see above); nothing written"
  fi
fi
if ((make_user)); then
  chown "root:$agent_user" "$config"
  [[ -f $bootstrap_dest ]] && chown "root:$agent_user" "$bootstrap_dest"
else
  skip "chown root:$agent_user $config (and $bootstrap_dest, if any)"
fi

# -- 5. the unit -------------------------------------------------------------------------
mkdir -p "$(dirname "$prefix$dropin")"
install -m 0644 "$unit_src" "$prefix$unit"
if [[ -n $uid ]]; then
  cat > "$prefix$dropin" <<EOF
# Written by deploy/agent/install.sh: the agent talks to the rootless podman of user
# $agent_user (uid $uid), served by that user's systemd instance.
[Unit]
Wants=user@$uid.service
After=user@$uid.service
EOF
else
  rm -f "$prefix$dropin"
  skip "write $dropin (Wants=/After=user@<uid>.service): user $agent_user does not exist"
fi

# -- 6. systemd ------------------------------------------------------------------------
if ((make_user)) && [[ -d /run/systemd/system ]]; then
  loginctl enable-linger "$agent_user"
  systemctl daemon-reload
  systemctl --user --machine="$agent_user@.host" daemon-reload \
    && systemctl --user --machine="$agent_user@.host" start podman.socket \
    || say "warning: could not start podman.socket for $agent_user yet (starts at next boot)"
  systemctl enable fleet-agent.service
  systemctl restart fleet-agent.service
  say "fleet-agent is running: systemctl status fleet-agent; journalctl -u fleet-agent -f"
else
  skip "loginctl enable-linger $agent_user"
  skip "systemctl daemon-reload; systemctl enable fleet-agent; systemctl restart fleet-agent"
fi

if ((${#skipped[@]})); then
  mkdir -p "$(dirname "$skipped_file")"
  printf '%s\n' "${skipped[@]}" > "$skipped_file"
else
  rm -f "$skipped_file"
fi
say "done"

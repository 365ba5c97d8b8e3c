#!/bin/sh
# A stand-in for /etc/rc.common, /lib/functions.sh, procd.sh and network.sh,
# to run an OpenWrt procd init script on any machine and record what it asks
# of procd.
#
#   sh procd_harness.sh INITSCRIPT ACTION
#
# Environment:
#   HARNESS_RECORD      file the calls are appended to, one per line: the
#                       function name and its arguments, separated by \037
#   HARNESS_UCI_DIR     directory of the UCI files (sroamd, network) that
#                       config_load and `uci get` read
#   HARNESS_PYTHON      python3 that runs tests/uci_export.py, the stand-in
#                       for /sbin/uci (written apart from sroamd's parser)
#   HARNESS_PROG        replaces the script's PROG (the daemon it runs)
#   HARNESS_CONFIGFILE  replaces the script's CONFIGFILE
#   HARNESS_L3DEV_<net> / HARNESS_PHYSDEV_<net>
#                       netifd's l3_device / device of logical network <net>
#                       (unset: the network is down / has no device)
# shellcheck disable=SC3043,SC2034

HARNESS_DIR=$(cd "$(dirname "$0")" && pwd)
: "${HARNESS_RECORD:?}" "${HARNESS_UCI_DIR:?}" "${HARNESS_PYTHON:=python3}"

record() {
	local name="$1"
	shift
	{
		printf '%s' "$name"
		for arg in "$@"; do
			printf '\037%s' "$arg"
		done
		printf '\n'
	} >>"$HARNESS_RECORD"
}

# --- /lib/functions.sh (the parts init scripts use) --------------------------

append() {
	local var="$1" value="$2" sep="${3:- }"
	eval "$var=\${$var:+\${$var}\${value:+\$sep}}\$value"
}

config_set() {
	eval "CONFIG_${1}_${2}=\$3"
}

package() {
	return 0
}

config() {
	CONFIG_SECTION="${2:-cfg$CONFIG_NUM_SECTIONS}"
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	append CONFIG_SECTIONS "$CONFIG_SECTION"
	config_set "$CONFIG_SECTION" TYPE "$1"
	append HARNESS_LOADED "CONFIG_${CONFIG_SECTION}_TYPE"
}

option() {
	config_set "$CONFIG_SECTION" "$1" "$2"
	append HARNESS_LOADED "CONFIG_${CONFIG_SECTION}_$1"
}

list() {
	local name="$1" value="$2" len
	config_get len "$CONFIG_SECTION" "${name}_LENGTH" 0
	len=$((len + 1))
	config_set "$CONFIG_SECTION" "${name}_ITEM$len" "$value"
	config_set "$CONFIG_SECTION" "${name}_LENGTH" "$len"
	append "CONFIG_${CONFIG_SECTION}_${name}" "$value" " "
	append HARNESS_LOADED "CONFIG_${CONFIG_SECTION}_${name} CONFIG_${CONFIG_SECTION}_${name}_LENGTH CONFIG_${CONFIG_SECTION}_${name}_ITEM$len"
}

config_load() {
	local var data
	record config_load "$@"
	for var in $HARNESS_LOADED; do
		unset "$var"
	done
	HARNESS_LOADED=
	CONFIG_SECTIONS=
	CONFIG_NUM_SECTIONS=0
	CONFIG_SECTION=
	# As uci_load (/lib/config/uci.sh): not strict (-S), anonymous sections
	# named (-n), errors to /dev/null.
	data="$(uci -S -n export "$1" 2>/dev/null)" || return 1
	[ -z "$data" ] || eval "$data"
}

config_get() {
	case "$3" in
	"") eval "echo \"\${CONFIG_${1}_${2}:-\${3}}\"" ;;
	*) eval "$1=\${CONFIG_${2}_${3}:-\$4}" ;;
	esac
}

config_get_bool() {
	local _tmp
	config_get _tmp "$2" "$3" "$4"
	case "$_tmp" in
	1 | on | true | yes | enabled) _tmp=1 ;;
	0 | off | false | no | disabled) _tmp=0 ;;
	*) _tmp="$4" ;;
	esac
	eval "$1=\$_tmp"
}

config_foreach() {
	local function="$1" type="$2" section cfgtype
	shift 2
	for section in $CONFIG_SECTIONS; do
		config_get cfgtype "$section" TYPE
		[ -n "$type" ] && [ "$type" != "$cfgtype" ] && continue
		eval "$function \"\$section\" \"\$@\""
	done
}

config_list_foreach() {
	local section="$1" option="$2" function="$3" val len c=1
	shift 3
	config_get len "$section" "${option}_LENGTH"
	[ -z "$len" ] && return 0
	while [ "$c" -le "$len" ]; do
		config_get val "$section" "${option}_ITEM$c"
		eval "$function \"\$val\" \"\$@\""
		c=$((c + 1))
	done
}

# --- commands -----------------------------------------------------------------

logger() {
	record logger "$@"
}

# /sbin/uci: `export` and `get` (tests/uci_export.py); other commands are
# recorded and fail.
uci() {
	case " $* " in
	*" export "* | *" get "*)
		"$HARNESS_PYTHON" "$HARNESS_DIR/uci_export.py" -c "$HARNESS_UCI_DIR" "$@"
		;;
	*)
		record uci "$@"
		return 1
		;;
	esac
}

# --- /lib/functions/network.sh, read by the script from $IPKG_INSTROOT --------

IPKG_INSTROOT=$(mktemp -d)
trap 'rm -rf "$IPKG_INSTROOT"' EXIT
mkdir -p "$IPKG_INSTROOT/lib/functions"
cat >"$IPKG_INSTROOT/lib/functions/network.sh" <<'EOF'
network_get_device() {
	local _dev
	eval "_dev=\${HARNESS_L3DEV_$2:-}"
	eval "$1=\$_dev"
	[ -n "$_dev" ]
}
network_get_physdev() {
	local _dev
	eval "_dev=\${HARNESS_PHYSDEV_$2:-}"
	eval "$1=\$_dev"
	[ -n "$_dev" ]
}
EOF

# --- /lib/functions/procd.sh ------------------------------------------------------

procd_open_service() { record procd_open_service "$@"; }
procd_open_instance() { record procd_open_instance "$@"; }
procd_set_param() { record procd_set_param "$@"; }
procd_append_param() { record procd_append_param "$@"; }
procd_close_instance() { record procd_close_instance "$@"; }
procd_add_reload_trigger() { record procd_add_reload_trigger "$@"; }
procd_add_interface_trigger() { record procd_add_interface_trigger "$@"; }
procd_add_reload_interface_trigger() { record procd_add_reload_interface_trigger "$@"; }
procd_add_raw_trigger() { record procd_add_raw_trigger "$@"; }
procd_send_signal() { record procd_send_signal "$@"; }
procd_kill() { record procd_kill "$@"; }
procd_close_service() {
	record procd_open_trigger
	service_triggers
	record procd_close_trigger
	record procd_close_service "$@"
}

# --- /etc/rc.common -----------------------------------------------------------------

initscript="$1"
action="${2:-help}"
shift 2

start_service() { return 0; }
stop_service() { return 0; }
service_triggers() { return 0; }

# shellcheck source=/dev/null
. "$initscript"

[ -n "$HARNESS_PROG" ] && PROG="$HARNESS_PROG"
[ -n "$HARNESS_CONFIGFILE" ] && CONFIGFILE="$HARNESS_CONFIGFILE"
[ -n "$USE_PROCD" ] || {
	echo "harness: $initscript does not set USE_PROCD" >&2
	exit 2
}

rc_procd() {
	local method=set
	[ -n "$2" ] && method=add
	procd_open_service "$(basename "$initscript")" "$initscript"
	"$@"
	record "returned" "$1" "$?"
	procd_close_service "$method"
}

start() { rc_procd start_service "$@"; }
stop() {
	stop_service "$@"
	procd_kill "$(basename "$initscript")" "$1"
}
restart() {
	stop "$@"
	start "$@"
}
reload() {
	if type reload_service >/dev/null 2>&1; then
		reload_service "$@"
	else
		start
	fi
}

case "$action" in
start | stop | restart | reload) "$action" "$@" ;;
*)
	echo "harness: unsupported action $action" >&2
	exit 2
	;;
esac

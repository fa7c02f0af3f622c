# rgw.sh - a one-node Ceph cluster and its S3 gateway (Ceph RGW), from
# Debian 12's packages, on loopback, for the tests against a second real S3
# server: a monitor, one OSD on BlueStore in a sparse file, radosgw with the
# beast frontend on 127.0.0.1, pools of size 1, an S3 user and a bucket.
# No systemd: each daemon runs in the foreground (-f) as a job of the test,
# is stopped by its pid (SIGTERM, then lib.sh's cleanup kills what is left),
# and every file it writes lives under $TMP/ceph.  Sourced after lib.sh.
#
#   if missing=$(rgw_missing); then skip...; fi   # the first program not installed
#   rgw_start          # sets RGW_ENDPOINT, RGW_ACCESS_KEY, RGW_SECRET_KEY,
#                      # RGW_BUCKET (made), RGW_DIR, RGW_START_SECONDS
#   rgw_stop           # SIGTERM to the daemons, waits; 1 if one had to be killed

RGW_PROGRAMS="ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool"
RGW_BUCKET=cairn-test
_rgw_pids=

rgw_missing() {
	for _p in $RGW_PROGRAMS; do
		command -v "$_p" >/dev/null 2>&1 || { echo "$_p"; return 0; }
	done
	return 1
}

_rgw_ms() { echo $(( $(date +%s%N) / 1000000 )); }

_rgw_ports() {	# two free ports on 127.0.0.1, held together so they differ
	"${NODE:-node}" -e 'const net = require("net"), a = net.createServer(), b = net.createServer();
		a.listen(0, "127.0.0.1", () => b.listen(0, "127.0.0.1", () => {
			console.log(a.address().port, b.address().port); a.close(); b.close(); }));'
}

_rgw_bail() {
	echo "Bail out! the Ceph test cluster: $1; its logs: $(tail -n 3 "$RGW_DIR"/log/* 2>/dev/null | tr '\n' ' ' | cut -c1-600)"
	exit 1
}

_rgw_ceph() {	# the ceph CLI on our cluster, bounded
	timeout 60 ceph -c "$RGW_DIR/ceph.conf" --connect-timeout 30 "$@"
}

_rgw_wait() {	# _rgw_wait SECONDS WHAT COMMAND...: until COMMAND succeeds
	_w_end=$(( $(date +%s) + $1 ))
	_w_what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$_w_end" ] || _rgw_bail "$_w_what did not come up"
		sleep 0.5
	done
}

_rgw_daemon() {	# _rgw_daemon NAME COMMAND...: in the foreground, as our job
	_d_name=$1
	shift
	"$@" >>"$RGW_DIR/log/$_d_name.out" 2>&1 &
	bg_track $!
	_rgw_pids="$! $_rgw_pids"	# stopped in the reverse order
}

rgw_start() {
	_t0=$(_rgw_ms)
	RGW_DIR=$TMP/ceph
	mkdir -p "$RGW_DIR/mon" "$RGW_DIR/osd" "$RGW_DIR/run" "$RGW_DIR/log"
	_fsid=$(cat /proc/sys/kernel/random/uuid)
	_ports=$(_rgw_ports)
	_mon_port=${_ports% *}
	_gw_port=${_ports#* }
	# msgr2 only, on loopback; one replica; small caches; no manager (the
	# gateway needs none); admin sockets and logs under $RGW_DIR
	cat >"$RGW_DIR/ceph.conf" <<EOF
[global]
fsid = $_fsid
mon host = v2:127.0.0.1:$_mon_port
mon initial members = a
public network = 127.0.0.0/8
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $RGW_DIR/keyring
run dir = $RGW_DIR/run
admin socket = $RGW_DIR/run/\$name.asok
log file = $RGW_DIR/log/\$name.log
mon data = $RGW_DIR/mon/\$name
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd data = $RGW_DIR/osd/\$id
osd objectstore = bluestore
osd memory target = 939524096
bluestore block create = true
bluestore block size = 10737418240
bluestore block db create = false
bluestore block wal create = false
bluestore cache autotune = false
bluestore cache size = 134217728
EOF
	ceph-authtool --create-keyring "$RGW_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' \
		>/dev/null || _rgw_bail "ceph-authtool failed"
	ceph-authtool "$RGW_DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' \
		--cap osd 'allow *' --cap mgr 'allow *' >/dev/null
	monmaptool --create --addv a "[v2:127.0.0.1:$_mon_port]" --fsid "$_fsid" \
		"$RGW_DIR/monmap" >/dev/null || _rgw_bail "monmaptool failed"
	ceph-mon -c "$RGW_DIR/ceph.conf" --mkfs -i a --monmap "$RGW_DIR/monmap" \
		--keyring "$RGW_DIR/keyring" >"$RGW_DIR/log/mon-mkfs.out" 2>&1 ||
		_rgw_bail "ceph-mon --mkfs failed"
	_rgw_daemon mon ceph-mon -c "$RGW_DIR/ceph.conf" -f -i a

	# the OSD: its id and key from the monitor, then BlueStore in a sparse file
	_osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	_rgw_ceph osd new "$_osd_uuid" >/dev/null || _rgw_bail "the monitor did not answer"
	mkdir -p "$RGW_DIR/osd/0"
	ceph-authtool --create-keyring "$RGW_DIR/osd/0/keyring" --gen-key -n osd.0 >/dev/null
	_rgw_ceph auth add osd.0 osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' \
		-i "$RGW_DIR/osd/0/keyring" >/dev/null 2>&1 || _rgw_bail "cannot register osd.0"
	ceph-osd -c "$RGW_DIR/ceph.conf" -i 0 --keyring "$RGW_DIR/osd/0/keyring" --mkfs \
		--osd-uuid "$_osd_uuid" >"$RGW_DIR/log/osd-mkfs.out" 2>&1 ||
		_rgw_bail "ceph-osd --mkfs failed"
	_rgw_daemon osd ceph-osd -c "$RGW_DIR/ceph.conf" -f -i 0 --keyring "$RGW_DIR/osd/0/keyring"
	_rgw_ceph auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' \
		-o "$RGW_DIR/rgw.keyring" >/dev/null 2>&1 || _rgw_bail "cannot make the gateway's key"
	_rgw_wait 90 "osd.0" sh -c '_rgw_up=$(timeout 20 ceph -c "$1" osd stat) && echo "$_rgw_up" | grep -q "1 up"' \
		_ "$RGW_DIR/ceph.conf"

	_rgw_daemon rgw radosgw -c "$RGW_DIR/ceph.conf" -f -n client.rgw.a \
		--keyring "$RGW_DIR/rgw.keyring" --rgw-frontends "beast endpoint=127.0.0.1:$_gw_port"
	RGW_ENDPOINT=http://127.0.0.1:$_gw_port
	_rgw_wait 90 "radosgw on $RGW_ENDPOINT" curl -sf -o /dev/null "$RGW_ENDPOINT/"

	RGW_ACCESS_KEY=CAIRNRGWTESTACCESS01
	RGW_SECRET_KEY=$(head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n')
	timeout 60 radosgw-admin -c "$RGW_DIR/ceph.conf" user create --uid=cairn --display-name=cairn \
		--access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY" \
		>"$RGW_DIR/log/user.out" 2>&1 || _rgw_bail "radosgw-admin user create failed"
	"${NODE:-node}" "$SRCDIR/tests/s3/sdk-interop.js" --endpoint "$RGW_ENDPOINT" \
		--bucket "$RGW_BUCKET" --access-key "$RGW_ACCESS_KEY" --secret-key "$RGW_SECRET_KEY" \
		mkbucket >"$RGW_DIR/log/bucket.out" 2>&1 || _rgw_bail "cannot make bucket $RGW_BUCKET"
	RGW_START_SECONDS=$(( ($(_rgw_ms) - _t0) / 100 ))
	RGW_START_SECONDS=$(( RGW_START_SECONDS / 10 )).$(( RGW_START_SECONDS % 10 ))
}

rgw_stop() {	# 1 when a daemon had to be killed
	_stopped=0
	for _p in $_rgw_pids; do
		kill -TERM "$_p" 2>/dev/null
		fs_wait_exit "$_p" || { kill -KILL "$_p" 2>/dev/null; _stopped=1; }
		bg_wait "$_p"
	done
	_rgw_pids=
	return $_stopped
}

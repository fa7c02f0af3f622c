#!/bin/bash
# s3-tls.sh - s3rver 3.7.1 over TLS on 127.0.0.1, for the benchmarks.
#
# Sourced (by snapshot-bench.sh):
#   s3tls_cert DIR            make DIR/cert.pem + DIR/key.pem (self-signed,
#                             IP SAN 127.0.0.1) unless they exist
#   s3tls_start DIR CERTDIR   start s3rver-tls.js with its data in DIR (bucket
#                             "bench"); sets S3TLS_PID, S3TLS_PORT,
#                             S3TLS_ENDPOINT (https://127.0.0.1:PORT), S3TLS_CA
#   s3tls_stats               print the request counters (JSON)
#   s3tls_reset               zero them
#   s3tls_stop                stop the server started last (by its pid)
#
# Run directly, it starts one server in a temporary dir, prints the variables
# restic and cairn need, and serves until interrupted:
#   tests/bench/s3-tls.sh
#
# Needs node and tests/node_modules (`cd tests && npm ci`), openssl, curl.

S3TLS_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3TLS_TOP=$(cd "$S3TLS_HERE/../.." && pwd)
S3TLS_PID=
S3TLS_PORT=
S3TLS_ENDPOINT=
S3TLS_CA=

s3tls_cert() {
	local dir=$1
	[ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] && return 0
	mkdir -p "$dir"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" -days 7 \
		-subj "/CN=127.0.0.1" \
		-addext "subjectAltName=IP:127.0.0.1" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,digitalSignature,keyCertSign" \
		-addext "extendedKeyUsage=serverAuth" 2>/dev/null ||
		{ echo "s3-tls: openssl could not make a certificate" >&2; return 1; }
}

s3tls_start() {
	local dir=$1 certdir=$2 i
	if [ ! -d "$S3TLS_TOP/tests/node_modules/s3rver" ]; then
		echo "s3-tls: tests/node_modules/s3rver is missing: run 'cd tests && npm ci'" >&2
		return 1
	fi
	mkdir -p "$dir/data"
	: >"$dir/log"
	NODE_PATH="$S3TLS_TOP/tests/node_modules" node "$S3TLS_HERE/s3rver-tls.js" \
		--dir "$dir/data" --key "$certdir/key.pem" --cert "$certdir/cert.pem" \
		--port 0 --bucket bench >"$dir/log" 2>&1 </dev/null &
	S3TLS_PID=$!
	for i in $(seq 1 200); do
		S3TLS_PORT=$(sed -n 's/^READY \([0-9][0-9]*\)$/\1/p' "$dir/log")
		[ -n "$S3TLS_PORT" ] && break
		if ! kill -0 "$S3TLS_PID" 2>/dev/null; then
			echo "s3-tls: s3rver exited:" >&2
			cat "$dir/log" >&2
			S3TLS_PID=
			return 1
		fi
		sleep 0.05
	done
	if [ -z "$S3TLS_PORT" ]; then
		echo "s3-tls: s3rver did not become ready in 10 s" >&2
		s3tls_stop
		return 1
	fi
	S3TLS_ENDPOINT="https://127.0.0.1:$S3TLS_PORT"
	S3TLS_CA="$certdir/cert.pem"
}

s3tls_stats() {
	curl -sS --max-time 10 --cacert "$S3TLS_CA" "$S3TLS_ENDPOINT/__bench/stats"
}

s3tls_reset() {
	curl -sS --max-time 10 --cacert "$S3TLS_CA" -X POST "$S3TLS_ENDPOINT/__bench/reset" >/dev/null
}

s3tls_stop() {
	local i
	[ -n "$S3TLS_PID" ] || return 0
	kill -TERM "$S3TLS_PID" 2>/dev/null
	for i in $(seq 1 50); do
		kill -0 "$S3TLS_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$S3TLS_PID" 2>/dev/null
	wait "$S3TLS_PID" 2>/dev/null
	S3TLS_PID=
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -eu
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/s3-tls.XXXXXX")
	trap 's3tls_stop; rm -rf "$tmp"' EXIT
	trap 'exit 130' INT TERM
	s3tls_cert "$tmp/cert"
	s3tls_start "$tmp/s3" "$tmp/cert"
	cat <<EOF
s3rver over TLS, pid $S3TLS_PID, data in $tmp/s3/data (bucket "bench")
  export AWS_ENDPOINT_URL=$S3TLS_ENDPOINT AWS_CA_BUNDLE=$S3TLS_CA
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=auto
  restic -r s3:$S3TLS_ENDPOINT/bench/restic --cacert $S3TLS_CA ...
  curl --cacert $S3TLS_CA $S3TLS_ENDPOINT/__bench/stats
Ctrl-C stops it.
EOF
	while kill -0 "$S3TLS_PID" 2>/dev/null; do sleep 1; done
fi

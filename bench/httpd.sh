#!/usr/bin/env bash
# httpd.sh — requests/s of `wrk -t1 -c100 -d5s` against asynchost's HTTP
# server (/json, bench/data.json: 1,024 bytes) and against nginx serving the
# same bytes, in the same run; prints both and the ratio (target: asynchost
# at least 50% of nginx).  Installs nothing: needs wrk and nginx
# (apt-get install -y wrk nginx).  Env: ASYNCHOST_BIN, RUNS (default 3),
# PORT (asynchost, 18090), NGINX_PORT (18091).
set -u
cd "$(dirname "$0")/.."
BIN=${ASYNCHOST_BIN:-build/asynchost}
RUNS=${RUNS:-3}
PORT=${PORT:-18090}
NGINX_PORT=${NGINX_PORT:-18091}
for c in wrk nginx; do
  command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || {
    echo "httpd.sh: $c is not installed (apt-get install -y $c)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "httpd.sh: $BIN not built" >&2; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT INT TERM

mkdir -p "$dir/www" "$dir/logs"
cp bench/data.json "$dir/www/json"
cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $dir/tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = /json { root $dir/www; default_type application/json; }
  }
}
CONF
"$NGINX" -p "$dir" -c "$dir/nginx.conf" & pids+=($!)
"$BIN" bench/httpd.lua "$PORT" > "$dir/ah.out" & pids+=($!)
for _ in $(seq 50); do
  grep -q serving "$dir/ah.out" 2>/dev/null && break; sleep 0.1
done
sleep 0.3

rps() {  # url -> median requests/s over RUNS runs
  local url=$1 r all=()
  for _ in $(seq "$RUNS"); do
    r=$(wrk -t1 -c100 -d5s "$url" | awk '/Requests\/sec/ {print $2}')
    all+=("$r")
  done
  printf '%s\n' "${all[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
ah=$(rps "http://127.0.0.1:$PORT/json")
ng=$(rps "http://127.0.0.1:$NGINX_PORT/json")
echo "asynchost  $ah requests/s"
echo "nginx      $ng requests/s"
awk -v a="$ah" -v n="$ng" 'BEGIN { r = a / n;
  printf "asynchost at %.0f%% of nginx (target >= 50%%: %s)\n", r * 100,
         (r >= 0.5 ? "met" : "NOT met") }'

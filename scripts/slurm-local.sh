#!/usr/bin/env bash
# Start / stop a real single-node Slurm cluster on this machine, for tests and CI.
#
#   eval "$(scripts/slurm-local.sh start STATE_DIR)"   # last stdout line: export SLURM_CONF=...
#   sbatch / squeue / scontrol ...                      # need SLURM_CONF (nothing else)
#   scripts/slurm-local.sh stop STATE_DIR               # never fails; safe if already stopped
#
# Everything (munge key and socket, slurm.conf, state, spool, logs, pid files) lives
# under STATE_DIR; nothing in /etc or /run is read or written, so several STATE_DIRs
# can exist side by side (but only one cluster runs at a time on the default ports;
# override with SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT).
# Needs root (the daemons run as root: SlurmUser=root). Installs Debian's Slurm and
# MUNGE with apt-get (--no-install-recommends) when they are missing.
#
# Notes from getting this to work on Debian bookworm (Slurm 22.05, MUNGE 0.5.15):
# - `slurm-wlm` is a metapackage depending on slurmctld, slurmd and slurm-client
#   (sbatch, squeue, scontrol, sinfo); with recommends it would also pull ~35 plugin and
#   -dev packages (hdf5, rocm, influxdb, ...) that are not needed here.
# - Slurm finds the MUNGE socket through `AuthInfo=socket=...` in slurm.conf, which the
#   client commands also read via SLURM_CONF, so callers need only SLURM_CONF.
# - The daemons run in the foreground (-D / -F) under setsid, with stdin/stdout/stderr
#   redirected to files: a caller's `$(...)` would otherwise hang on the inherited pipe.
# - slurmctld starts with -c (clear saved jobs) and slurmd with -c, so each start is a
#   fresh, empty cluster (job ids continue from the previous run in the same STATE_DIR).
# - `stop` cancels the jobs first: slurmstepd processes outlive slurmd otherwise. Leftover
#   processes are found by their open files under STATE_DIR (slurmstepd keeps the slurmd
#   log open) or by SLURM_CONF=STATE_DIR/slurm.conf + SLURM_JOB_ID in their environment,
#   never by name.
# - proctrack/linuxproc (no cgroups here) tracks a job's processes by parentage: a
#   process whose parent exits is reparented to init and escapes Slurm's kill (seen with
#   `sbatch --wrap 'bash -c "trap \"\" TERM; sleep 300"'`: sh dies on TERM, sleep lives
#   on). Batch scripts must wait for their children.
set -euo pipefail

CTLD_PORT="${SLURM_LOCAL_CTLD_PORT:-16817}"
SLURMD_PORT="${SLURM_LOCAL_SLURMD_PORT:-16818}"
START_TIMEOUT="${SLURM_LOCAL_START_TIMEOUT:-60}"
# Job step credential lifetime; also the delay before a requeued job may start again
# (Slurm sets its BeginTime to requeue time + cred_expire + 1; default 120 s).
CRED_EXPIRE="${SLURM_LOCAL_CRED_EXPIRE:-10}"
DAEMONS_STOP_ORDER=(slurmd slurmctld munged)

usage() {
    echo "usage: $0 start|stop|status STATE_DIR" >&2
    exit 2
}

log() { echo "slurm-local: $*" >&2; }

# Slurm's daemons live in /usr/sbin, which a non-login root shell may lack in PATH.
export PATH="$PATH:/usr/sbin:/sbin:/usr/bin"

ensure_installed() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
        command -v munged >/dev/null && command -v sbatch >/dev/null &&
        command -v scontrol >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        log "slurm/munge missing and not root: cannot apt-get install"
        return 1
    fi
    local pkgs=(slurm-wlm slurmctld slurmd slurm-client munge)
    local apt=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${pkgs[@]}")
    log "installing ${pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Lists empty (fresh image): update first; otherwise try with the current lists and
    # update only if that fails (e.g. stale lists pointing at removed versions).
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        apt-get update -q -o DPkg::Lock::Timeout=300 >&2
    fi
    if ! "${apt[@]}" >&2; then
        apt-get update -q -o DPkg::Lock::Timeout=300 >&2
        "${apt[@]}" >&2
    fi
}

pid_alive() { # pid expected-comm
    local pid="$1" comm="$2"
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    # Guard against pid reuse: the recorded pid must still be that daemon.
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
    # A zombie counts as gone.
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

recorded_pid() { # name
    cat "$STATE/run/$1.pid" 2>/dev/null || true
}

stop_pid() { # pid comm timeout
    local pid="$1" comm="$2" timeout="$3" i
    pid_alive "$pid" "$comm" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        pid_alive "$pid" "$comm" || return 0
        sleep 0.1
    done
    log "$comm ($pid) did not exit on SIGTERM within ${timeout}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" "$comm" || return 0
        sleep 0.1
    done
}

# Our own pid and its ancestors: never to be killed by `stop`.
self_and_ancestors() {
    local p=$$
    while [ -n "$p" ] && [ "$p" != 0 ]; do
        echo "$p"
        p="$(awk '{ print $4 }' "/proc/$p/stat" 2>/dev/null || true)"
    done
}

# Leftovers of this cluster, other than us: processes holding a file open under
# STATE_DIR (slurmstepd keeps the slurmd log open), and job processes (their environment
# has SLURM_JOB_ID and our SLURM_CONF) that escaped proctrack/linuxproc, which loses a
# process once its parent exits (it is reparented to init).
leftover_procs() {
    local f
    {
        { find /proc/[0-9]*/fd -maxdepth 1 -lname "$STATE/*" 2>/dev/null || true; } |
            awk -F/ '{ print $3 }'
        for f in $(grep -lzxF "SLURM_CONF=$STATE/slurm.conf" /proc/[0-9]*/environ 2>/dev/null || true); do
            grep -qz '^SLURM_JOB_ID=' "$f" 2>/dev/null && echo "$f" | cut -d/ -f3
        done
    } | sort -un | grep -vxF -f <(self_and_ancestors) || true
}

cmd_stop() {
    [ -d "$STATE" ] || return 0
    export SLURM_CONF="$STATE/slurm.conf"
    local i jobs
    # 1. Cancel all jobs while the controller is up, and wait (bounded) for them to end,
    #    so that no slurmstepd or job process outlives the cluster.
    if pid_alive "$(recorded_pid slurmctld)" slurmctld && [ -f "$SLURM_CONF" ]; then
        jobs="$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ' || true)"
        if [ -n "${jobs// /}" ]; then
            # shellcheck disable=SC2086
            timeout 10 scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 30; i++)); do
                [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null || true)" ] && break
                sleep 1
            done
        fi
    fi
    # 2. The daemons, by recorded pid.
    local d comm
    for d in "${DAEMONS_STOP_ORDER[@]}"; do
        comm="$d"
        stop_pid "$(recorded_pid "$d")" "$comm" 15
        rm -f "$STATE/run/$d.pid"
    done
    # 3. Leftovers (a slurmstepd of a job that did not end in time, job processes that
    #    escaped): TERM, then KILL.
    local left
    left="$(leftover_procs | tr '\n' ' ')"
    if [ -n "${left// /}" ]; then
        log "terminating leftover processes using $STATE: $left"
        # shellcheck disable=SC2086
        kill -TERM $left 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            sleep 0.1
            left="$(leftover_procs | tr '\n' ' ')"
            [ -n "${left// /}" ] || break
        done
        # shellcheck disable=SC2086
        [ -z "${left// /}" ] || kill -KILL $left 2>/dev/null || true
    fi
    return 0
}

port_in_use() { # port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

show_logs() {
    local f
    for f in munged.out slurmctld.log slurmd.log slurmctld.out slurmd.out; do
        [ -s "$STATE/log/$f" ] || continue
        # The .out files repeat the .log files (the daemons run in the foreground),
        # unless a daemon failed before opening its log.
        case "$f" in slurm*.out) [ -s "$STATE/log/${f%.out}.log" ] && continue ;; esac
        echo "----- $STATE/log/$f (tail) -----" >&2
        tail -n 30 "$STATE/log/$f" >&2
    done
}

fail_start() {
    log "start failed: $*"
    show_logs
    cmd_stop || true
    exit 1
}

spawn() { # name cmd...  — start a foreground daemon detached, record its pid
    local name="$1"
    shift
    # setsid: own session, so the caller's Ctrl-C / process-group kills don't reach it.
    # Not a group leader here (no job control), so setsid execs without forking and $!
    # is the daemon's pid.
    setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 &
    local pid=$! i
    echo "$pid" >"$STATE/run/$name.pid"
    # Until the daemon is exec'd, /proc/PID/comm names the forked shell, then setsid.
    for ((i = 0; i < 100; i++)); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && break
        [ -e "/proc/$pid" ] || break
        sleep 0.05
    done
}

cmd_start() {
    ensure_installed
    mkdir -p "$STATE"
    STATE="$(cd "$STATE" && pwd -P)"
    export SLURM_CONF="$STATE/slurm.conf"
    # A previous cluster in this STATE_DIR: stop it first.
    cmd_stop
    mkdir -p "$STATE"/{munge,run,log,ctld,spool}
    # munged wants the socket's directory searchable by all (key stays 0600).
    chmod 0755 "$STATE" "$STATE/munge"
    : >"$STATE/log/munged.out"
    : >"$STATE/log/slurmctld.out"
    : >"$STATE/log/slurmd.out"
    rm -f "$STATE/log/"{munged,slurmctld,slurmd}.log

    local p
    for p in "$CTLD_PORT" "$SLURMD_PORT"; do
        port_in_use "$p" && fail_start "port $p on 127.0.0.1 is in use (another cluster running?" \
            "set SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT)"
    done

    # --- MUNGE ---------------------------------------------------------------------
    local key="$STATE/munge/munge.key" sock="$STATE/munge/munge.socket"
    if [ ! -s "$key" ]; then
        dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
    fi
    chmod 0600 "$key"
    [ "${#sock}" -lt 100 ] || fail_start "munge socket path too long (${#sock} chars): use a shorter STATE_DIR"
    rm -f "$sock" "$sock.lock"
    # --force: run as root, and tolerate e.g. a world-writable /tmp above STATE_DIR.
    spawn munged munged --foreground --force \
        --key-file="$key" --socket="$sock" \
        --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/log/munged.log" \
        --seed-file="$STATE/munge/munged.seed"
    local i
    for ((i = 0; i < 100; i++)); do
        [ -S "$sock" ] && break
        pid_alive "$(recorded_pid munged)" munged || fail_start "munged exited"
        sleep 0.1
    done
    [ -S "$sock" ] || fail_start "munged socket $sock did not appear"
    munge --socket="$sock" -n </dev/null | unmunge --socket="$sock" >/dev/null ||
        fail_start "munge/unmunge round trip failed"

    # --- slurm.conf ----------------------------------------------------------------
    local host cpus mem_mb
    host="$(hostname -s)"
    cpus="$(nproc)"
    mem_mb="$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.95 }' /proc/meminfo)"
    cat >"$SLURM_CONF" <<EOF
# Generated by scripts/slurm-local.sh: a single-node test cluster. Do not edit.
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock,cred_expire=$CRED_EXPIRE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.daemon.pid
SlurmdPidFile=$STATE/run/slurmd.daemon.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=300
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1,batch_sched_delay=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

    # --- Slurm daemons ---------------------------------------------------------------
    spawn slurmctld slurmctld -D -c -f "$SLURM_CONF"
    # Wait for the controller to answer before starting slurmd, so its registration
    # is not delayed by a retry.
    for ((i = 0; i < START_TIMEOUT * 5; i++)); do
        pid_alive "$(recorded_pid slurmctld)" slurmctld || fail_start "slurmctld exited"
        timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break
        sleep 0.2
    done
    spawn slurmd slurmd -D -c -N "$host" -f "$SLURM_CONF"
    local state=""
    for ((i = 0; i < START_TIMEOUT * 5; i++)); do
        pid_alive "$(recorded_pid slurmctld)" slurmctld || fail_start "slurmctld exited"
        pid_alive "$(recorded_pid slurmd)" slurmd || fail_start "slurmd exited"
        state="$(timeout 5 sinfo -h -N -n "$host" -o %t 2>/dev/null || true)"
        [ "$state" = idle ] && break
        sleep 0.2
    done
    [ "$state" = idle ] || fail_start "node $host not idle after ${START_TIMEOUT}s (state: '${state:-?}')"
    log "cluster up: node $host idle, ${cpus} CPUs, ${mem_mb} MB (state in $STATE)"
    echo "export SLURM_CONF=$SLURM_CONF"
}

cmd_status() {
    local d pid
    for d in munged slurmctld slurmd; do
        pid="$(recorded_pid "$d")"
        if pid_alive "$pid" "$d"; then echo "$d: running ($pid)"; else echo "$d: stopped"; fi
    done
    if [ -f "$STATE/slurm.conf" ]; then
        SLURM_CONF="$STATE/slurm.conf" timeout 5 sinfo -N 2>/dev/null || true
    fi
}

[ $# -eq 2 ] || usage
STATE="$2"
case "$1" in
start) cmd_start ;;
stop)
    [ -d "$STATE" ] && STATE="$(cd "$STATE" && pwd -P)"
    cmd_stop
    ;;
status)
    [ -d "$STATE" ] && STATE="$(cd "$STATE" && pwd -P)"
    cmd_status
    ;;
*) usage ;;
esac

#!/usr/bin/env bash
# Self-check of a real single-node Slurm cluster (scripts/slurm-local.sh): proves the
# pieces the grid runner relies on. Prints one line per check; exits non-zero on failure.
#
#   scripts/slurm-selfcheck.sh          # needs root; installs slurm/munge if missing
#   SLURM_SELFCHECK_KEEP=1 ...          # keep the temp dir (state, logs, job files)
#
# Checks:
#   a. array job (--array=0-2) + a job with --dependency=afterany:<arrayjobid>
#   b. `scontrol requeue` of a running array task whose batch script forwards signals to
#      a long-running child that checkpoints; the task runs again and ends COMPLETED
#   c. `scancel --batch --signal=USR1` (what `--signal=B:USR1@N` does before the time
#      limit) reaches only the batch shell, which forwards it to the child
#
# What we learned (Debian bookworm, Slurm 22.05.8, proctrack/linuxproc, task/none):
# - Array task ids: `scontrol requeue <arrayjobid>_<taskid>` (e.g. 7_1) works, and so
#   does the task's own job id ($SLURM_JOB_ID inside the task, which differs from
#   $SLURM_ARRAY_JOB_ID except for one task). `scontrol show job 7_1` works too.
# - `scontrol requeue` of a running job sends SIGTERM to the WHOLE job: the batch shell
#   and every descendant (linuxproc tracks the process tree), in no fixed order; SIGKILL
#   follows after KillWait (10 s here). So the child gets TERM directly, and a second
#   time if the batch shell forwards it: the child's handler must be idempotent.
# - By contrast `--signal=B:USR1@N` and `scancel -b -s USR1` signal ONLY the batch
#   shell: the script must forward (trap + kill) to its children. A bash script only
#   runs traps between commands, so it must run the child in the background and `wait`
#   (wait returns >128 when a trapped signal arrives; then wait again).
# - A requeued job goes back to PENDING, Reason=BeginTime, not held (`requeuehold`
#   gives Reason=job_requeued_in_held_state; `scontrol release` then still leaves the
#   BeginTime wait). Its BeginTime is requeue time + cred_expire + 1 s; cred_expire
#   defaults to 120 s, so slurm-local.sh sets AuthInfo=...,cred_expire=10: the task
#   restarts ~12 s after the requeue. `scontrol update JobId=7_1 StartTime=now` skips
#   the wait (starts within ~1 s), but also turns TimeLimit=UNLIMITED into 365 days.
# - On restart SLURM_RESTART_COUNT=1 (unset on the first run), the job keeps its ids,
#   `scontrol show job` shows Restarts=1, and the -o output file is truncated unless
#   --open-mode=append.
# - No accounting database: sacct does not work; scontrol show job keeps finished jobs
#   for MinJobAge (300 s), which is what we poll.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "[selfcheck $(elapsed)s] $*"; }

work="$(mktemp -d /tmp/slurm-selfcheck.XXXXXX)"
state="$work/cluster"
jobs="$work/jobs"
mkdir -p "$jobs"
status=1

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ "$status" = 0 ] || rc=1
    if [ "$rc" != 0 ]; then
        echo "----- selfcheck FAILED; job files in $jobs -----"
        for f in "$jobs"/*; do
            [ -f "$f" ] || continue
            echo "== $f"
            tail -n 20 "$f"
        done
        for f in "$state"/log/slurmctld.log "$state"/log/slurmd.log; do
            [ -f "$f" ] && { echo "== $f"; tail -n 25 "$f"; }
        done
    fi
    "$here/slurm-local.sh" stop "$state" || true
    if [ "${SLURM_SELFCHECK_KEEP:-}" = 1 ] || [ "$rc" != 0 ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    say "FAIL: $*"
    exit 1
}

# job_field JOBID FIELD -> value of FIELD= in `scontrol show job -o` (first record)
job_field() {
    timeout 10 scontrol show job -o "$1" 2>/dev/null | head -n 1 |
        grep -o "\b$2=[^ ]*" | head -n 1 | cut -d= -f2-
}

# wait_ended JOBID TIMEOUT: all records of JOBID (an array: all tasks) in a final state.
wait_ended() {
    local id="$1" deadline=$((SECONDS + $2)) out
    while ((SECONDS < deadline)); do
        out="$(timeout 10 scontrol show job -o "$id" 2>/dev/null | grep -o 'JobState=[A-Z_]*' || true)"
        if [ -n "$out" ] && ! grep -qvE 'JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|BOOT_FAIL|DEADLINE|PREEMPTED)' <<<"$out"; then
            return 0
        fi
        sleep 0.5
    done
    fail "job $id did not end within $2 s: $(tr '\n' ' ' <<<"$out")"
}

# wait_for DESCRIPTION TIMEOUT COMMAND...: poll COMMAND until it succeeds.
wait_for() {
    local what="$1" deadline=$((SECONDS + $2))
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || fail "timed out (${deadline}s) waiting for $what"
        sleep 0.5
    done
}

# --- cluster ---------------------------------------------------------------------------
say "starting cluster in $state"
start_out="$("$here/slurm-local.sh" start "$state")" || fail "slurm-local.sh start failed"
eval "$(tail -n 1 <<<"$start_out")"
[ "${SLURM_CONF:-}" = "$state/slurm.conf" ] || fail "start did not print export SLURM_CONF=..."
say "cluster up: $(sinfo -h -N -o '%N %t %c CPUs %m MB')"
t_up=$(elapsed)

# --- a. array job + afterany dependency ---------------------------------------------------
cat >"$jobs/array.sh" <<'EOF'
#!/bin/bash
sleep 2
echo "$SLURM_ARRAY_TASK_ID" > "task_$SLURM_ARRAY_TASK_ID.txt"
EOF
cat >"$jobs/after.sh" <<'EOF'
#!/bin/bash
# Runs after all array tasks ended: each wrote its file at its very end.
cat task_*.txt | sort -n | tr '\n' ' ' > after.txt
EOF
arr="$(sbatch --parsable --array=0-2 --chdir="$jobs" -o "$jobs/array_%A_%a.out" "$jobs/array.sh")"
arr="${arr%%;*}"
dep="$(sbatch --parsable --dependency="afterany:$arr" --chdir="$jobs" -o "$jobs/after_%j.out" "$jobs/after.sh")"
dep="${dep%%;*}"
say "a. submitted array job $arr (tasks 0-2) and job $dep with --dependency=afterany:$arr"
dep_reason="$(job_field "$dep" Reason)"
[ "$dep_reason" = Dependency ] || fail "a. job $dep should wait with Reason=Dependency, has '$dep_reason'"
wait_ended "$arr" 60
wait_ended "$dep" 60
for i in 0 1 2; do
    [ "$(cat "$jobs/task_$i.txt" 2>/dev/null)" = "$i" ] || fail "a. array task $i did not write task_$i.txt"
    st="$(job_field "${arr}_$i" JobState)"
    [ "$st" = COMPLETED ] || fail "a. array task ${arr}_$i ended $st"
done
[ "$(job_field "$dep" JobState)" = COMPLETED ] || fail "a. dependent job $dep ended $(job_field "$dep" JobState)"
[ "$(cat "$jobs/after.txt" 2>/dev/null)" = "0 1 2 " ] ||
    fail "a. dependent job ran before all array tasks ended (saw '$(cat "$jobs/after.txt" 2>/dev/null)')"
say "a. PASS: array tasks wrote 0 1 2; dependent job ran after all of them, all COMPLETED"
t_a=$(elapsed)

# --- b. requeue of a running array task ----------------------------------------------------
cat >"$jobs/requeue.sh" <<'EOF'
#!/bin/bash
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
#SBATCH --open-mode=append
tag="r_$SLURM_ARRAY_TASK_ID"
echo "start ${SLURM_RESTART_COUNT:-0} job=$SLURM_JOB_ID $(date +%s.%N)" >> "$tag.starts"
if [ "${SLURM_RESTART_COUNT:-0}" -ge 1 ]; then
    echo "resumed from count $(tail -n 1 "$tag.count")" >> "$tag.log"
    exit 0
fi
# The long-running child (stands in for the trainer): one count a second; checkpoints on
# TERM or USR1. Slurm's requeue TERMs it directly as well as via our forwarding, so its
# handler is idempotent (exits on the first signal).
bash -c '
    tag=$1
    # (kill our sleep too: once we exit it would be orphaned, and proctrack/linuxproc
    # loses track of orphans.)
    on_sig() { kill $! 2>/dev/null; echo "checkpointed $1 at count $i" >> "$tag.log"; exit $2; }
    trap "on_sig TERM 143" TERM
    trap "on_sig USR1 138" USR1
    i=0
    while true; do i=$((i + 1)); echo $i >> "$tag.count"; sleep 1 & wait $!; done
' child "$tag" &
child=$!
# B:USR1 reaches only this shell: forward it (and TERM) to the child.
trap 'echo "batch shell got USR1" >> "$tag.log"; kill -USR1 $child 2>/dev/null' USR1
trap 'echo "batch shell got TERM" >> "$tag.log"; kill -TERM $child 2>/dev/null' TERM
while :; do
    wait "$child" && rc=0 || rc=$?
    kill -0 "$child" 2>/dev/null || break   # wait was interrupted by a trapped signal
done
echo "child exited $rc" >> "$tag.log"
exit "$rc"
EOF
rq="$(sbatch --parsable --array=0-1 --chdir="$jobs" -o "$jobs/requeue_%A_%a.out" "$jobs/requeue.sh")"
rq="${rq%%;*}"
task="${rq}_1"
say "b. submitted array job $rq (tasks 0-1; both long-running)"
count_at_least() { [ "$(tail -n 1 "$jobs/$1" 2>/dev/null || echo 0)" -ge "$2" ] 2>/dev/null; }
wait_for "task $task running with 3 counts" 60 count_at_least r_1.count 3
[ "$(job_field "$task" JobState)" = RUNNING ] || fail "b. $task not RUNNING"
t_rq0=$(elapsed)
timeout 10 scontrol requeue "$task" || fail "b. scontrol requeue $task failed"
say "b. scontrol requeue $task (at count $(tail -n 1 "$jobs/r_1.count"))"
is_pending() { [ "$(job_field "$task" JobState)" = PENDING ]; }
wait_for "$task to go back to PENDING" 30 is_pending
say "b. $task PENDING, Reason=$(job_field "$task" Reason), Restarts=$(job_field "$task" Restarts)"
started_twice() { [ "$(grep -c '^start' "$jobs/r_1.starts" 2>/dev/null)" -ge 2 ]; }
wait_for "$task to start again" 60 started_twice
t_rq1=$(elapsed)
say "b. $task started again $(awk -v a="$t_rq0" -v b="$t_rq1" 'BEGIN { printf "%.1f", b - a }')s after the requeue"
wait_ended "$task" 30
st="$(job_field "$task" JobState)"
[ "$st" = COMPLETED ] || fail "b. $task ended $st (expected COMPLETED)"
[ "$(job_field "$task" ExitCode)" = 0:0 ] || fail "b. $task ExitCode=$(job_field "$task" ExitCode)"
[ "$(job_field "$task" Restarts)" = 1 ] || fail "b. $task Restarts=$(job_field "$task" Restarts)"
grep -q '^checkpointed TERM' "$jobs/r_1.log" || fail "b. child of $task never checkpointed"
[ "$(cut -d' ' -f1-2 "$jobs/r_1.starts" | tr '\n' ',')" = "start 0,start 1," ] ||
    fail "b. expected starts 0 and 1, got: $(tr '\n' ';' <"$jobs/r_1.starts")"
grep -q '^resumed from count' "$jobs/r_1.log" || fail "b. second run did not see the first run's counts"
say "b. PASS: child checkpointed ($(grep -m1 '^checkpointed' "$jobs/r_1.log")), script started twice" \
    "(SLURM_RESTART_COUNT 0 then 1), $task COMPLETED with Restarts=1"
# Task 0 was untouched: still running its first run.
[ "$(job_field "${rq}_0" JobState)" = RUNNING ] || fail "b. untouched task ${rq}_0 is $(job_field "${rq}_0" JobState)"
[ "$(grep -c '^start' "$jobs/r_0.starts")" = 1 ] || fail "b. task ${rq}_0 restarted"
t_b=$(elapsed)

# --- c. USR1 to the batch shell only, forwarded to the child --------------------------------
# Same as --signal=B:USR1@N does near the time limit, without waiting for it.
timeout 10 scancel --batch --signal=USR1 "${rq}_0" || fail "c. scancel --batch --signal=USR1 failed"
say "c. scancel --batch --signal=USR1 ${rq}_0"
wait_ended "${rq}_0" 30
grep -q '^batch shell got USR1' "$jobs/r_0.log" || fail "c. batch shell did not get USR1"
grep -q '^checkpointed USR1' "$jobs/r_0.log" || fail "c. child did not get the forwarded USR1"
grep -q '^batch shell got TERM' "$jobs/r_0.log" && fail "c. unexpected TERM"
st="$(job_field "${rq}_0" JobState)"
code="$(job_field "${rq}_0" ExitCode)"
{ [ "$st" = FAILED ] && [ "$code" = 138:0 ]; } || fail "c. ${rq}_0 ended $st ExitCode=$code (expected FAILED 138:0)"
say "c. PASS: USR1 reached only the batch shell, which forwarded it; child checkpointed, job FAILED 138:0"
t_c=$(elapsed)

status=0
say "PASS: all checks (cluster up ${t_up}s; a: $(awk -v a="$t_up" -v b="$t_a" 'BEGIN{printf "%.1f", b-a}')s;" \
    "b: $(awk -v a="$t_a" -v b="$t_b" 'BEGIN{printf "%.1f", b-a}')s;" \
    "c: $(awk -v a="$t_b" -v b="$t_c" 'BEGIN{printf "%.1f", b-a}')s; total $(elapsed)s)"

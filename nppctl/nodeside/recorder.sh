#!/bin/bash
# nppctl's CNI call recorder: installed as @WRAPPER@ in front of the real plugin @REAL@.
# It runs the plugin with the caller's argv[0], arguments, environment, stdin and working folder, gives
# the caller the plugin's stdout, stderr and exit code byte for byte, and records the call in @DIR@
# (format: nppctl/nodeside/calls.py). Bash builtins only on the way (no exec but the plugin's, and
# `rm` once in a hundred calls to prune). A record that cannot be written is left out silently, and
# when not even the scratch files can be made, the plugin is exec'd directly: the record never changes
# the plugin's outcome.
# What a plugin can tell apart (tests/calls/test_recorder.py checks the rest is the same): its stdin,
# stdout and stderr are files in /dev/shm, not the caller's pipes, and its output reaches the caller
# when it exits; a script plugin's $0 is the real plugin's path (the kernel gives the interpreter the file's path;
# a binary's argv[0] is the caller's), as is /proc/self/exe; the environment holds the same variables,
# maybe in another order; a plugin killed by signal N looks like exit 128+N; when the caller kills
# the recorder (a runtime's timeout), the plugin keeps running until it ends.
real=@REAL@
dir=@DIR@
cap=@CAP@
keep=@KEEP@

t0=${EPOCHREALTIME//[!0-9]/}
# Scratch files (stdin, stdout, stderr) in memory (/dev/shm; creating files on a container's overlay
# costs more), else beside the records. Opened for writing and, apart, for reading before the plugin
# runs, so a prune removing their names meanwhile loses nothing. Fds from 10 up (bash picks them).
scratch_dir=$dir
[[ -d /dev/shm && -w /dev/shm ]] && scratch_dir=/dev/shm
scratch=$scratch_dir/.nppctl-call-$t0-$$
open_scratch() {
    exec {in_w}>"$scratch.in" {in_r}<"$scratch.in" {out_w}>"$scratch.out" {out_r}<"$scratch.out" \
        {err_w}>"$scratch.err" {err_r}<"$scratch.err"
} 2>/dev/null
[[ -d $dir ]] || mkdir -p -- "$dir" 2>/dev/null # the first call after install, or after rm -r
if ! open_scratch; then # close what did open, then the plugin as if no recorder were there
    for fd in ${in_w-} ${in_r-} ${out_w-} ${out_r-} ${err_w-} ${err_r-}; do exec {fd}>&-; done
    exec -a "$0" "$real" "$@"
fi

# stdin: kept whole in memory (NUL-separated pieces), and copied to the scratch file the plugin reads.
ins=()
while IFS= read -r -d '' piece; do ins+=("$piece"); done
in_tail=$piece
{ ((${#ins[@]})) && printf '%s\0' "${ins[@]}"; printf '%s' "$in_tail"; } 2>/dev/null >&$in_w
copied=$?

# The plugin, with bash's own additions to the environment (SHLVL, PWD, OLDPWD, _) put back as the
# caller gave them (read from this process's initial environment), and none of the scratch fds.
run_plugin() {
    unset -v SHLVL PWD OLDPWD
    local kv
    while IFS= read -r -d '' kv; do
        case $kv in SHLVL=* | PWD=* | OLDPWD=*) export "$kv" ;; esac
    done 2>/dev/null </proc/$$/environ
    unset -v _
    exec -a "$0" "$real" "$@" >&$out_w 2>&$err_w {in_w}>&- {in_r}<&- {out_w}>&- {out_r}<&- \
        {err_w}>&- {err_r}<&-
}
t1=${EPOCHREALTIME//[!0-9]/}
if ((copied == 0)); then
    (run_plugin "$@" <&$in_r)
else # the scratch copy failed (disk full?): the plugin reads the caller's stdin from a pipe
    { ((${#ins[@]})) && printf '%s\0' "${ins[@]}"; printf '%s' "$in_tail"; } | (run_plugin "$@")
fi
rc=$?
t2=${EPOCHREALTIME//[!0-9]/}

outs=()
while IFS= read -r -d '' piece <&$out_r; do outs+=("$piece"); done
out_tail=$piece
errs=()
while IFS= read -r -d '' piece <&$err_r; do errs+=("$piece"); done
err_tail=$piece
{ ((${#outs[@]})) && printf '%s\0' "${outs[@]}"; printf '%s' "$out_tail"; }
{ ((${#errs[@]})) && printf '%s\0' "${errs[@]}"; printf '%s' "$err_tail"; } >&2

# The record, one file per call: "nppctl-call 1", then per field a line "NAME LENGTH FULL_LENGTH",
# LENGTH bytes and a newline (FULL_LENGTH > LENGTH: the field was cut at @CAP@ bytes); last "end 0 0".
# A record without its end line is being written, or its writing failed: readers skip it.
LC_ALL=C
rec=$'nppctl-call 1\n' # what is text (no NUL) gathers here: one write in the usual case
field() { rec+="$1 ${#2} ${#2}"$'\n'"$2"$'\n'; }
stream() {
    local -n pieces=$2
    local tail=$3 full=0 left=$cap piece
    for piece in "${pieces[@]}"; do ((full += ${#piece} + 1)); done
    ((full += ${#tail}))
    if ((full <= cap && ${#pieces[@]} == 0)); then
        field "$1" "$tail"
        return
    fi
    printf '%s%s %d %d\n' "$rec" "$1" "$((full <= cap ? full : cap))" "$full"
    rec=
    for piece in "${pieces[@]}"; do
        if ((${#piece} + 1 <= left)); then
            printf '%s\0' "$piece"
            ((left -= ${#piece} + 1))
        else
            printf '%s' "${piece:0:left}"
            left=0
            break
        fi
    done
    ((left > 0)) && printf '%s' "${tail:0:left}"
    printf '\n'
}
caller=
read -r caller 2>/dev/null </proc/$PPID/comm
{
    field start "$t0"
    field duration_us "$((t2 - t1))"
    field type "${real##*/}"
    field pid "$$"
    field caller "$caller"
    field command "${CNI_COMMAND-}"
    field containerid "${CNI_CONTAINERID-}"
    field netns "${CNI_NETNS-}"
    field ifname "${CNI_IFNAME-}"
    field args "${CNI_ARGS-}"
    field path "${CNI_PATH-}"
    field exit "$rc"
    stream stdin ins "$in_tail"
    stream stdout outs "$out_tail"
    stream stderr errs "$err_tail"
    printf '%send 0 0\n' "$rec"
} 2>/dev/null >"$dir/$t0-$$.call" # (2> first: a failing > says nothing on the caller's stderr)
: 2>/dev/null >"$scratch.in"
: 2>/dev/null >"$scratch.out"
: 2>/dev/null >"$scratch.err"
if [[ $t0 == *00 ]]; then # about one call in a hundred: keep the newest @KEEP@ records, drop scratch
    shopt -s nullglob
    records=("$dir"/*.call)
    old=()
    ((${#records[@]} > keep)) && old=("${records[@]:0:${#records[@]}-keep}")
    rm -f -- "${old[@]}" "$scratch_dir"/.nppctl-call-* 2>/dev/null
fi
exit $rc

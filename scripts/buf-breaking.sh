#!/usr/bin/env bash
# The contract only grows: check the working tree's protos/ against every committed version of protos/.
#
#   scripts/buf-breaking.sh [REPO_DIR]     (default: the repository this script is in)
#
# For each commit in `git rev-list HEAD -- protos/` (newest first; the newest is HEAD's own version, so
# uncommitted edits are checked too), that commit's protos/ is exported with `git archive` into a temp
# directory and `buf breaking` compares the current module against it, with the rules of buf.yaml.
# git archive needs no network and no full clone: in a shallow clone the script checks the history it
# has, and says so.
#
# Exit codes: 0 nothing broke; 1 a breaking change (buf's messages name it); 2 could not check (no git
# repository, no buf binary, a version buf cannot build).
# The buf binary: $BUF, else REPO_DIR/.venv/bin/buf, else this repository's .venv/bin/buf, else buf on PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "${1:-$here}" && pwd)"
protos="protos"

fail() {
    echo "buf-breaking: $*" >&2
    exit 2
}

buf="${BUF:-}"
if [[ -z "$buf" ]]; then
    for candidate in "$repo/.venv/bin/buf" "$here/.venv/bin/buf"; do
        if [[ -x "$candidate" ]]; then
            buf="$candidate"
            break
        fi
    done
fi
if [[ -z "$buf" ]]; then
    buf="$(command -v buf || true)"
fi
[[ -n "$buf" && -x "$buf" ]] || fail "no buf binary: pip install buf-bin (the dev extra), or set BUF"

cd "$repo"
git rev-parse --git-dir >/dev/null 2>&1 || fail "$repo is not a git repository"
[[ -d "$protos" ]] || fail "$repo has no $protos/ directory"

# With buf.yaml (v2, `modules: - path: protos`) at the root, check the workspace so its rules apply.
if [[ -f buf.yaml ]]; then
    input="."
else
    input="$protos"
fi

mapfile -t versions < <(git rev-list HEAD -- "$protos/")
if [[ "$(git rev-parse --is-shallow-repository)" == "true" ]]; then
    echo "buf-breaking: shallow clone: checking only the ${#versions[@]} version(s) of $protos/ in the history" \
        "this clone has (git fetch --unshallow to check them all)"
fi
if [[ ${#versions[@]} -eq 0 ]]; then
    echo "buf-breaking: no committed version of $protos/ to compare against"
    exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/buf-breaking.XXXXXX")"
trap 'rm -rf "$work"' EXIT

broken=0
checked=0
for sha in "${versions[@]}"; do
    label="$(git log -1 --format='%h %cs %s' "$sha")"
    if [[ -z "$(git ls-tree -d "$sha" -- "$protos")" ]]; then
        echo "-- $label: $protos/ removed in this commit, skipped"
        continue
    fi
    old="$work/$sha"
    mkdir -p "$old"
    git archive "$sha" -- "$protos" | tar -x -C "$old"
    set +e
    output="$("$buf" breaking "$input" --against "$old/$protos" 2>&1)"
    status=$?
    set -e
    checked=$((checked + 1))
    if [[ $status -eq 0 ]]; then
        echo "ok $label"
    elif [[ $status -eq 100 ]]; then
        # buf exits 100 when it found breaking changes.
        broken=1
        echo "BREAKING against $label:"
        echo "$output" | sed 's/^/    /'
    else
        echo "buf could not compare against $label (exit $status):" >&2
        echo "$output" | sed 's/^/    /' >&2
        exit 2
    fi
done

if [[ $broken -ne 0 ]]; then
    echo "buf-breaking: $protos/ breaks an earlier version of the contract: fields and RPCs are added," \
        "never renamed, renumbered or removed" >&2
    exit 1
fi
echo "buf-breaking: $protos/ is compatible with all $checked committed version(s)"

# shellcheck shell=bash
# The required.d parser of kabiguard's shell parts, sourced by the dracut module
# (module-setup.sh, beside this file) and the initramfs-tools hook (which sources the copy
# installed as /usr/share/kabiguard/required.sh). Bash.

# kabiguard_say reports a problem through dracut's log, or on stderr when sourced elsewhere
# (tests).
kabiguard_say() {
    if type derror >/dev/null 2>&1; then derror "$*"; else echo "$*" >&2; fi
}

# Go's unicode white space outside ASCII (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028,
# U+2029, U+202F, U+205F, U+3000) in UTF-8: strings.TrimSpace removes it around a line.
kabiguard_uspace=($'\xc2\x85' $'\xc2\xa0' $'\xe1\x9a\x80' $'\xe2\x80\x80' $'\xe2\x80\x81' $'\xe2\x80\x82'
    $'\xe2\x80\x83' $'\xe2\x80\x84' $'\xe2\x80\x85' $'\xe2\x80\x86' $'\xe2\x80\x87' $'\xe2\x80\x88'
    $'\xe2\x80\x89' $'\xe2\x80\x8a' $'\xe2\x80\xa8' $'\xe2\x80\xa9' $'\xe2\x80\xaf' $'\xe2\x81\x9f'
    $'\xe3\x80\x80')

# kabiguard_required prints every module declared in required.d, one line "NAME" or
# "NAME early" per declaration ('-' in NAME as '_'), or fails naming the file and line of the
# first bad one. It reads the files exactly as kabiguard itself does (config.loadRequired in
# config/config.go, rule in config/modname.go; TestRequiredParsersAgree runs both over the same
# files): every *.conf, dot files too, in byte order; a regular file (or a link to one), else
# an error; '#' starts a comment anywhere; white space around a line is dropped; what is left
# must be ASCII; its first word is a module name of letters, digits, '_' and '-', not starting
# with '-' (never a path, a shell pattern or an option), the other words must be "early".
# A subshell: the shell options, locale and variables stay here.
kabiguard_required() (
    LC_ALL=C
    shopt -s nullglob dotglob
    dir="${KABIGUARD_CONFDIR:-${dracutsysrootdir-}/etc/kabiguard}/required.d"
    files=("$dir"/*.conf)
    set -f # from here on no word of a line is a pattern
    for f in "${files[@]}"; do
        if [ ! -f "$f" ]; then
            kabiguard_say "kabiguard: $f: not a regular file"
            exit 1
        fi
        # read drops NUL bytes; as \001 they stay what Go sees: neither space nor a name's
        content=$(tr '\000' '\001' <"$f") || { kabiguard_say "kabiguard: $f: cannot read it"; exit 1; }
        n=0
        while IFS= read -r line; do
            n=$((n + 1))
            line=${line%%#*}
            while :; do # strings.TrimSpace
                old=$line
                line=${line#[$' \t\v\f\r']}
                line=${line%[$' \t\v\f\r']}
                for w in "${kabiguard_uspace[@]}"; do
                    line=${line#"$w"}
                    line=${line%"$w"}
                done
                [ "$line" != "$old" ] || break
            done
            [ -n "$line" ] || continue
            case $line in *[![:ascii:]]*)
                kabiguard_say "kabiguard: $f:$n: non-ASCII byte in \"$line\""
                exit 1 ;;
            esac
            IFS=$' \t\v\f\r'
            # shellcheck disable=SC2086 # split into words on purpose; set -f: no globbing
            set -- $line
            IFS=$' \t\n'
            name=$1
            shift
            case $name in -* | *[!A-Za-z0-9_-]*) # -*: never an option to instmods
                kabiguard_say "kabiguard: $f:$n: \"$name\" is not a module name (letters, digits, '_' and '-'; '-' not first)"
                exit 1 ;;
            esac
            early=
            for flag in "$@"; do
                [ -n "$flag" ] || continue # \v, \f, \r are no IFS white space: empty words
                if [ "$flag" != early ]; then
                    kabiguard_say "kabiguard: $f:$n: unknown flag \"$flag\" after module $name (known: early)"
                    exit 1
                fi
                early=" early"
            done
            echo "${name//-/_}$early"
        done <<<"$content"
    done
)

# kabiguard_early prints the required modules marked early, one per line, each once.
kabiguard_early() {
    local list name flag
    list=$(kabiguard_required) || return 1
    [ -n "$list" ] || return 0
    while read -r name flag; do
        [ "$flag" = early ] && echo "$name"
    done <<<"$list" | LC_ALL=C sort -u
}

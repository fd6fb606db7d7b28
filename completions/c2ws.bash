_c2ws_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _C2WS_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _c2ws_completion c2ws

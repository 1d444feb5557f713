unsupported() {  # an unknown flag must not quietly yield host data or a wrong format
    echo "$TOOL: $1 is not supported by the localcloud guest shim" >&2
    exit 2
}

# print_table ALIGN: TABLE holds ${#ALIGN} cells per row; ALIGN has one L or R per column.
print_table() {
    local align=$1 ncols=${#1} i col cell line
    local -a width=()
    for ((i = 0; i < ${#TABLE[@]}; i++)); do
        col=$((i % ncols))
        cell=${TABLE[i]}
        if ((${#cell} > ${width[col]:-0})); then width[col]=${#cell}; fi
    done
    for ((i = 0; i < ${#TABLE[@]}; i += ncols)); do
        line=""
        for ((col = 0; col < ncols; col++)); do
            cell=${TABLE[i + col]}
            if [[ ${align:col:1} == R ]]; then
                printf -v cell '%*s' "${width[col]}" "$cell"
            elif ((col < ncols - 1)); then
                printf -v cell '%-*s' "${width[col]}" "$cell"
            fi
            line+=$cell
            if ((col < ncols - 1)); then line+=" "; fi
        done
        printf '%s\n' "$line"
    done
}

# Flags: -s/--match-tag TAG (repeatable), -o/--output value|full|export|device, -U/--uuid UUID,
# -L/--label LABEL, -c/--cache-file FILE (ignored), -p, -g, -l (ignored), then optional devices.
# Tags: UUID BLOCK_SIZE TYPE PARTUUID (filesystems), PTUUID PTTYPE (the system disk itself).
# Exit status 2 when nothing matched, as blkid does.
TOOL=blkid
tags=() format=full devices=() find_uuid="" find_label="" lookup=0
while (($#)); do
    arg=$1
    shift
    case $arg in
    --) devices+=("$@"); break ;;
    -s | --match-tag) tags+=("${1:?}"); shift ;;
    -s*) tags+=("${arg#-s}") ;;
    --match-tag=*) tags+=("${arg#*=}") ;;
    -o | --output) format=${1:?}; shift ;;
    -o*) format=${arg#-o} ;;
    --output=*) format=${arg#*=} ;;
    -U | --uuid) find_uuid=${1:?}; lookup=1; shift ;;
    --uuid=*) find_uuid=${arg#*=}; lookup=1 ;;
    -L | --label) find_label=${1:?}; lookup=1; shift ;;
    --label=*) find_label=${arg#*=}; lookup=1 ;;
    -c | --cache-file) shift ;;
    -p | --probe | -g | --garbage-collect | -l | --list-one) ;;
    -*) unsupported "$arg" ;;
    *) devices+=("$arg") ;;
    esac
done
case $format in value | full | export | device) ;; *) unsupported "-o $format" ;; esac

if ((lookup)); then  # -U/-L print the matching device, like findfs
    if [[ -n $find_label ]]; then exit 2; fi  # guest filesystems carry no labels
    for i in "${!DEV_NAME[@]}"; do
        if [[ -n ${DEV_UUID[i]} && ${DEV_UUID[i]} == "$find_uuid" ]]; then
            echo "/dev/${DEV_NAME[i]}"
            exit 0
        fi
    done
    exit 2
fi

rows=()
if ((${#devices[@]} == 0)); then
    for i in "${!DEV_NAME[@]}"; do [[ -n ${DEV_FSTYPE[i]} ]] && rows+=("$i"); done
else
    for device in "${devices[@]}"; do
        name=${device#/dev/}
        for i in "${!DEV_NAME[@]}"; do [[ ${DEV_NAME[i]} == "$name" ]] && rows+=("$i"); done
    done
fi

wanted() {  # wanted TAG: is TAG selected by -s (all tags when there is no -s)
    local tag
    ((${#tags[@]} == 0)) && return 0
    for tag in "${tags[@]}"; do [[ ${tag^^} == "$1" ]] && return 0; done
    return 1
}
status=2
for i in "${rows[@]}"; do
    pairs=()
    if [[ -n ${DEV_FSTYPE[i]} ]]; then
        pairs+=(UUID "${DEV_UUID[i]}" BLOCK_SIZE 4096 TYPE "${DEV_FSTYPE[i]}")
        [[ -n ${DEV_PARTUUID[i]} ]] && pairs+=(PARTUUID "${DEV_PARTUUID[i]}")
    elif [[ -n ${DEV_PTTYPE[i]} ]]; then
        pairs+=(PTUUID "${DEV_PTUUID[i]}" PTTYPE "${DEV_PTTYPE[i]}")
    fi
    selected=()
    for ((p = 0; p < ${#pairs[@]}; p += 2)); do
        wanted "${pairs[p]}" && selected+=("${pairs[p]}" "${pairs[p + 1]}")
    done
    ((${#selected[@]})) || continue
    status=0
    device=/dev/${DEV_NAME[i]}
    case $format in
    device) echo "$device" ;;
    value) for ((p = 1; p < ${#selected[@]}; p += 2)); do echo "${selected[p]}"; done ;;
    export)
        echo "DEVNAME=$device"
        for ((p = 0; p < ${#selected[@]}; p += 2)); do echo "${selected[p]}=${selected[p + 1]}"; done
        echo
        ;;
    full)
        line="$device:"
        for ((p = 0; p < ${#selected[@]}; p += 2)); do line+=" ${selected[p]}=\"${selected[p + 1]}\""; done
        echo "$line"
        ;;
    esac
done
exit "$status"

# Shared by the demo parts: a busybox root filesystem from Debian's busybox-static.
# make_busybox_rootfs DIR  -> bin/busybox, one link per applet, etc/passwd, etc/group
make_busybox_rootfs() {
    local dir=$1 busybox
    busybox=$(command -v busybox)
    mkdir -p "$dir"/{bin,etc,proc,sys,dev,tmp,root}
    chmod 1777 "$dir/tmp"
    cp "$busybox" "$dir/bin/busybox"
    for applet in $("$busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' > "$dir/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' > "$dir/etc/group"
}

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

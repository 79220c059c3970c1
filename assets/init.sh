#!/bin/sh
# smolvm /init: PID 1 of built images (SmolVM's `_base_init_script`, trimmed).
# Mounts the kernel file systems, configures eth0 from the kernel's ip= argument, installs
# the key passed as smolvm.authorized_key_b64=, starts sshd, prints SmolVM's ready line,
# then stays PID 1 and powers off cleanly on SIGTERM / SIGINT / SIGPWR.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

shutdown() {
  kill -TERM -1 2>/dev/null
  sleep 0.2
  sync
  poweroff -f
}
trap shutdown INT TERM PWR

mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /run 2>/dev/null
echo 0 > /proc/sys/kernel/ctrl-alt-del 2>/dev/null
mount -o remount,rw / 2>/dev/null
mkdir -p /run/sshd /run/smolvm /var/log /tmp && chmod 1777 /tmp
mount -t tmpfs tmpfs /tmp 2>/dev/null && chmod 1777 /tmp

ip=172.16.0.2 gw=172.16.0.1 mask=255.255.255.0 key=
for tok in $(cat /proc/cmdline); do
  case "$tok" in
    ip=*)
      v=${tok#ip=}
      f1=$(echo "$v" | cut -d: -f1); f3=$(echo "$v" | cut -d: -f3); f4=$(echo "$v" | cut -d: -f4)
      [ -n "$f1" ] && ip=$f1
      [ -n "$f3" ] && gw=$f3
      [ -n "$f4" ] && mask=$f4
      ;;
    smolvm.authorized_key_b64=*) key=${tok#smolvm.authorized_key_b64=} ;;
  esac
done

prefix=0
for octet in $(echo "$mask" | tr . ' '); do
  case "$octet" in
    255) prefix=$((prefix + 8)) ;; 254) prefix=$((prefix + 7)) ;; 252) prefix=$((prefix + 6)) ;;
    248) prefix=$((prefix + 5)) ;; 240) prefix=$((prefix + 4)) ;; 224) prefix=$((prefix + 3)) ;;
    192) prefix=$((prefix + 2)) ;; 128) prefix=$((prefix + 1)) ;;
  esac
done

ip link set lo up
ip link set eth0 up 2>/dev/null
ip addr add "$ip/$prefix" dev eth0 2>/dev/null
ip route add default via "$gw" 2>/dev/null
printf 'nameserver %s\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n' "$gw" > /etc/resolv.conf
hostname smolvm 2>/dev/null

# A host key that a power cut left empty is made again.
[ -s /etc/ssh/ssh_host_ed25519_key ] || {
  rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub
  ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 || ssh-keygen -q -t ed25519 -f /etc/ssh/ssh_host_ed25519_key -N ""
}
if [ -n "$key" ]; then
  mkdir -p /root/.ssh && chmod 700 /root/.ssh
  k=$(echo "$key" | base64 -d)
  f=/root/.ssh/authorized_keys
  touch "$f"
  if ! grep -qxF "$k" "$f"; then
    # Never glue the key to a last line without its new line.
    [ -s "$f" ] && [ "$(tail -c1 "$f" | wc -l)" -eq 0 ] && echo >> "$f"
    echo "$k" >> "$f"
  fi
  chmod 600 "$f"
fi
# First-boot files reach the disk now: a stop that cuts the power later keeps them.
sync

# Ready only with an SSH server to log in to: else smolvm's start fails at once, naming
# sshd's own complaint (printed just above, -e).
if /usr/sbin/sshd -e; then
  echo "SmolVM init complete: IP=$ip, SSH listening on port 22"
else
  echo "SmolVM init failed: sshd exited $?; no SSH server in this guest"
fi

while true; do sleep 3600 & wait $!; done

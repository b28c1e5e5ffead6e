# Builder of gen.nix (busybox sh). Output i is $o<i>; output 0 is $out.
PATH=/bin
bytes=$((kib * 1024))
path_of() { if [ "$1" -eq 0 ]; then echo "$out"; else eval "echo \"\$o$1\""; fi; }
i=0
while [ "$i" -lt "$n" ]; do
  dir=$(path_of "$i")
  busybox mkdir "$dir"
  busybox head -c "$bytes" /dev/urandom > "$dir/data"
  i=$((i + 1))
done
# references: o(i) -> o(i-1), o(i/2) for i >= 2; out -> o(n-1), o(n/2)
i=2
while [ "$i" -lt "$n" ]; do
  echo "$(path_of $((i - 1))) $(path_of $((i / 2)))" > "$(path_of "$i")/refs"
  i=$((i + 1))
done
if [ "$n" -gt 1 ]; then echo "$(path_of $((n - 1))) $(path_of $((n / 2)))" > "$out/refs"; fi

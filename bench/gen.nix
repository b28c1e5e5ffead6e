# Test closures for the benchmark, built locally with the real Nix (no network, no nixpkgs).
#
# One derivation with `n` outputs: `out` (the top, listed first so it is what nix-build
# returns) and o1 … o(n-1). Every output is a directory with `data` (`kib` KiB from
# /dev/urandom, so nothing compresses) and, from o2 on, `refs`: the store paths of o(i-1)
# and o(i/2). Nix's reference scanner turns those into real references, so the closure of
# `out` is all n paths, in a chain of depth n with a binary-tree shortcut. References between
# outputs of one derivation are ordinary store references: `nix copy` and `nix path-info -r`
# treat them exactly like references between separate derivations.
#
# The builder is the static busybox; `salt` makes each size/purpose a distinct set of paths.
{ n ? 200, kib ? 5120, salt ? "bench" }:
let
  others = builtins.genList (i: "o${toString (i + 1)}") (n - 1);
in
builtins.derivation {
  name = "nixyard-bench-${salt}";
  system = builtins.currentSystem;
  builder = "/bin/busybox";
  args = [ "sh" "-ec" (builtins.readFile ./gen.sh) ];
  outputs = [ "out" ] ++ others;
  n = toString n;
  kib = toString kib;
  inherit salt;
}

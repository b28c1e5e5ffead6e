# Hello, Nixyard: a tiny derivation built from nothing but a static busybox (no nixpkgs,
# no downloads). Put a copy of one next to this file first:
#   mkdir -p examples/busybox/bin && cp /bin/busybox examples/busybox/bin/
# (Debian/Ubuntu: `apt-get install busybox-static`.)
{ busybox ? ./busybox }:
let
  bb = builtins.path { path = busybox; name = "busybox"; };
in
derivation {
  name = "hello-nixyard";
  system = builtins.currentSystem;
  builder = "${bb}/bin/busybox";
  args = [ "sh" "-e" "-c" ''
    echo "building hello on $(${bb}/bin/busybox uname -s)"
    echo "Hello from Nixyard!" > $out
  '' ];
}

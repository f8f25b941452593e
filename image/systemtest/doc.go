// Package systemtest boots the presscap-vm image under QEMU and exercises
// it as a provider would: web UI, remote update, A/B switch. Its tests are
// behind the systemtest build tag (make systemtest): they need minutes, not
// seconds, and qemu-system-aarch64.
package systemtest

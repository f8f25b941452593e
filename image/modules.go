//go:build tools

package main

// The image is assembled from these modules: the gokrazy runtime and its
// default services are compiled into the image, the kernel, firmware and
// Raspberry Pi 4 EEPROM modules are data read from the module cache. Nothing in the build
// imports them, so this file (never compiled: the "tools" tag) keeps them
// in go.mod through `go mod tidy`.
import (
	_ "github.com/gokrazy/firmware"
	_ "github.com/gokrazy/gokrazy"
	_ "github.com/gokrazy/gokrazy/cmd/dhcp"
	_ "github.com/gokrazy/gokrazy/cmd/heartbeat"
	_ "github.com/gokrazy/gokrazy/cmd/ntp"
	_ "github.com/gokrazy/gokrazy/cmd/randomd"
	_ "github.com/gokrazy/kernel.amd64"
	_ "github.com/gokrazy/kernel.arm64"
	_ "github.com/gokrazy/kernel.rpi"
	_ "github.com/gokrazy/rpi-eeprom"
)

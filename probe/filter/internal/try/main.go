package main

import (
	"fmt"
	"os"

	"github.com/presscap/presscap/probe/filter"
)

func main() {
	mode := filter.Offline
	if len(os.Args) > 2 {
		mode = filter.Live
	}
	p, err := filter.Compile(os.Args[1], mode, 0)
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	filter.Dump(os.Stdout, p, filter.DumpAsm)
}

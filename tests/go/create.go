// Creates two files sparse the way Go programs do, with Go's own system calls (no libc
// for a preload to catch): one with WriteAt of its last byte, one with Truncate.
// Prints each call's result without paths, for the supervise tests to compare runs.
//
//	create DIR SIZE
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

func main() {
	dir := os.Args[1]
	size, err := strconv.ParseInt(os.Args[2], 10, 64)
	if err != nil {
		panic(err)
	}
	w, err := os.Create(filepath.Join(dir, "writeat"))
	if err != nil {
		panic(err)
	}
	n, err := w.WriteAt([]byte{'x'}, size-1)
	st, _ := w.Stat()
	fmt.Printf("writeat n=%d err=%v size=%d\n", n, err, st.Size())
	w.Close()
	t, err := os.Create(filepath.Join(dir, "truncate"))
	if err != nil {
		panic(err)
	}
	err = t.Truncate(size)
	st, _ = t.Stat()
	fmt.Printf("truncate err=%v size=%d\n", err, st.Size())
	t.Close()
}

// Command probe is the program inside the conformance suite's test image. It runs the
// verbs given as arguments, in order, and prints one line per verb ("verb: ok …" or
// "verb: error …") so tests can tell what a job was and was not able to do.
//
//	probe echo:hello write:/out/f=data tcp:172.17.0.1:80 tcp:$MASTER_ADDR:29500 exit:3
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	for _, a := range os.Args[1:] {
		// $NAME in an argument is the environment's: a test names addresses the
		// runtime hands the job (MASTER_ADDR) without knowing them beforehand.
		verb, arg, _ := strings.Cut(os.ExpandEnv(a), ":")
		run(verb, arg)
	}
}

func say(verb, format string, args ...any) {
	fmt.Printf("%s: %s\n", verb, fmt.Sprintf(format, args...))
}

func result(verb string, err error, okMsg string) {
	if err != nil {
		say(verb, "error %v", err)
		return
	}
	say(verb, "ok %s", okMsg)
}

func run(verb, arg string) {
	switch verb {
	case "echo":
		fmt.Println(arg)
	case "stderr":
		fmt.Fprintln(os.Stderr, arg)
	case "env":
		say(verb, "%s=%s", arg, os.Getenv(arg))
	case "exit":
		n, _ := strconv.Atoi(arg)
		os.Exit(n)
	case "sleep":
		d, _ := time.ParseDuration(arg)
		time.Sleep(d)
	case "write", "append":
		p, data, _ := strings.Cut(arg, "=")
		flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		if verb == "append" {
			flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		}
		f, err := os.OpenFile(p, flag, 0o644)
		if err == nil {
			_, err = f.WriteString(data + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		result(verb, err, p)
	case "fill": // fill:PATH=MB writes MB mebibytes
		p, mb, _ := strings.Cut(arg, "=")
		n, _ := strconv.Atoi(mb)
		f, err := os.Create(p)
		if err == nil {
			buf := make([]byte, 1<<20)
			for i := 0; i < n && err == nil; i++ {
				_, err = f.Write(buf)
			}
			f.Close()
		}
		result(verb, err, p)
	case "copy": // copy:SRC=DST copies a file
		src, dst, _ := strings.Cut(arg, "=")
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.WriteFile(dst, b, 0o755)
		}
		result(verb, err, dst)
	case "chmod": // chmod:PATH=OCTAL sets the mode bits, setuid, setgid and sticky included
		p, m, _ := strings.Cut(arg, "=")
		mode, err := strconv.ParseUint(m, 8, 32)
		if err == nil {
			err = syscall.Chmod(p, uint32(mode))
		}
		result(verb, err, p)
	case "hardlink": // hardlink:OLD=NEW
		old, p, _ := strings.Cut(arg, "=")
		result(verb, os.Link(old, p), p)
	case "symlink": // symlink:TARGET=PATH
		target, p, _ := strings.Cut(arg, "=")
		result(verb, os.Symlink(target, p), p)
	case "mkdir":
		result(verb, os.MkdirAll(arg, 0o755), arg)
	case "limits": // the soft/hard open-file, process and core-size limits
		var out []string
		for _, l := range []struct {
			name string
			res  int
		}{{"nofile", syscall.RLIMIT_NOFILE}, {"nproc", 6 /* RLIMIT_NPROC */}, {"core", syscall.RLIMIT_CORE}} {
			var rl syscall.Rlimit
			if err := syscall.Getrlimit(l.res, &rl); err != nil {
				result(verb, err, "")
				return
			}
			out = append(out, fmt.Sprintf("%s=%d/%d", l.name, rl.Cur, rl.Max))
		}
		say(verb, "ok %s", strings.Join(out, " "))
	case "read":
		b, err := os.ReadFile(arg)
		result(verb, err, strings.TrimSpace(string(b)))
	case "stat":
		fi, err := os.Stat(arg)
		if err != nil {
			result(verb, err, "")
			return
		}
		say(verb, "ok %s %v", arg, fi.Mode())
	case "tcp":
		c, err := net.DialTimeout("tcp", arg, 2*time.Second)
		if err == nil {
			c.Close()
		}
		result(verb, err, arg)
	case "listen": // listen:PORT accepts (and closes) connections in the background; 0 = any port
		ln, err := net.Listen("tcp", ":"+arg)
		if err != nil {
			result(verb, err, "")
			return
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		say(verb, "ok %s", ln.Addr())
	case "tcpretry": // tcpretry:ADDR dials until it connects, for up to 30s
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", arg, 2*time.Second)
			if err == nil {
				c.Close()
				result(verb, nil, arg)
				return
			}
			if time.Now().After(deadline) {
				result(verb, err, arg)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	case "udp":
		c, err := net.DialTimeout("udp", arg, 2*time.Second)
		if err == nil {
			_, err = c.Write([]byte("x"))
			c.Close()
		}
		result(verb, err, arg)
	case "dns":
		r := &net.Resolver{PreferGo: true}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		addrs, err := r.LookupHost(ctx, arg)
		cancel()
		result(verb, err, strings.Join(addrs, ","))
	case "ifaces":
		ifs, err := net.Interfaces()
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		result(verb, err, strings.Join(names, ","))
	case "status": // selected lines of /proc/self/status
		f, err := os.Open("/proc/self/status")
		if err != nil {
			result(verb, err, "")
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			switch k {
			case "CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Uid", "Seccomp":
				say(verb, "%s=%s", k, strings.Join(strings.Fields(v), " "))
			}
		}
	case "id":
		say(verb, "uid=%d euid=%d gid=%d egid=%d", os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid())
	case "setuid0":
		err := syscall.Setuid(0)
		result(verb, err, fmt.Sprintf("euid=%d", os.Geteuid()))
	case "exec": // exec:PATH runs PATH with the verbs "id setuid0"
		out, err := exec.Command(arg, "id", "setuid0").CombinedOutput()
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			say(verb, "child %s", l)
		}
		result(verb, err, arg)
	case "mknod":
		err := syscall.Mknod(arg, syscall.S_IFCHR|0o600, 1<<8|3)
		result(verb, err, arg)
	case "mount":
		err := syscall.Mount("tmpfs", arg, "tmpfs", 0, "")
		result(verb, err, arg)
	case "forkbomb": // forkbomb:N starts up to N sleeping children
		n, _ := strconv.Atoi(arg)
		var kids []*exec.Cmd
		var err error
		for i := 0; i < n; i++ {
			c := exec.Command(os.Args[0], "sleep:60s")
			if err = c.Start(); err != nil {
				break
			}
			kids = append(kids, c)
		}
		say(verb, "spawned %d err=%v", len(kids), err)
		for _, c := range kids {
			c.Process.Kill()
			c.Wait()
		}
	case "alloc": // alloc:MB allocates and touches MB mebibytes
		n, _ := strconv.Atoi(arg)
		var keep [][]byte
		for i := 0; i < n; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		say(verb, "ok %d", len(keep))
	case "spam": // spam:N prints N lines of 100 bytes
		n, _ := strconv.Atoi(arg)
		w := bufio.NewWriter(os.Stdout)
		line := strings.Repeat("x", 99) + "\n"
		for i := 0; i < n; i++ {
			w.WriteString(line)
		}
		w.Flush()
	case "trapterm": // on SIGTERM print and exit 143
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		go func() { <-ch; fmt.Println("trapterm: got SIGTERM"); os.Exit(143) }()
		say(verb, "ok")
	case "ignoreterm":
		signal.Ignore(syscall.SIGTERM)
		say(verb, "ok")
	default:
		say(verb, "error unknown verb")
	}
}

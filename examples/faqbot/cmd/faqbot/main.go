// Command faqbot runs the example FAQ bot behind Baton:
//
//	FAQ_BOT_HOOK_SECRET=whsec_... FAQ_BOT_API_TOKEN=... \
//	  go run ./examples/faqbot/cmd/faqbot -baton http://127.0.0.1:8080 -listen 127.0.0.1:9001
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/batonhq/baton/examples/faqbot"
)

func main() {
	baton := flag.String("baton", "http://127.0.0.1:8080", "Baton's public URL (its /graph answers the sends)")
	listen := flag.String("listen", "127.0.0.1:9001", "address Baton delivers to")
	quiet := flag.String("quiet", "human,agent,person", "comma-separated words left to Baton's escalation rule")
	hookEnv := flag.String("hook-secret-env", "FAQ_BOT_HOOK_SECRET", "env var with the http adapter's secret")
	tokenEnv := flag.String("token-env", "FAQ_BOT_API_TOKEN", "env var with the bot's Baton token")
	flag.Parse()

	b, err := faqbot.New(faqbot.Options{HookSecret: os.Getenv(*hookEnv), Baton: *baton, Token: os.Getenv(*tokenEnv),
		Quiet: strings.Split(*quiet, ",")})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("faqbot listening on %s", *listen)
	log.Fatal((&http.Server{Addr: *listen, Handler: b, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe())
}

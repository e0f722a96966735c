package graphapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/orchestrator/topology"
)

// keepBatonFields makes a bot's page subscription (POST subscribed_apps,
// which many SDKs call at start) keep every webhook field Baton needs:
// Meta replaces an app's fields with what the call names, so a bot that
// asks for "messages" alone would silently cut Baton off from handovers,
// standby and echoes, and Baton's record of who owns each thread would
// drift from Meta's. The fields the bot asked for are kept, Baton's are
// added; the call then goes to Meta as the bot sent it.
func keepBatonFields(c *call, p *topology.Page) *messenger.Error {
	if c.form != nil {
		return newError(http.StatusBadRequest, 100, 0, "(#100) send subscribed_fields as a query, form or JSON parameter: Baton keeps its own fields in the page subscription")
	}
	need := messenger.FieldsForConversationRouting
	if p.Instagram {
		need = messenger.FieldsForInstagram
	}
	var fields []string
	for _, f := range strings.Split(c.ps.String("subscribed_fields"), ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(fields, f) {
			fields = append(fields, f)
		}
	}
	for _, f := range need {
		if !slices.Contains(fields, f) {
			fields = append(fields, f)
		}
	}
	c.ps["subscribed_fields"] = strings.Join(fields, ",")
	return nil
}

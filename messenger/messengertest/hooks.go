package messengertest

import "github.com/batonhq/baton/messenger/messengertest/hooks"

// WebhookRecord is one webhook POST (with its retries) to one app (see
// package hooks).
type WebhookRecord = hooks.Record

package messengertest

import "github.com/batonhq/baton/messenger/messengertest/calllog"

// Call is one Graph API request the platform received (see package
// calllog).
type Call = calllog.Call

# Secrets for examples/quickstart/baton.yaml, matching the fake platform's
# examples/platform/platform.yaml. Source it: . examples/quickstart/env.sh
export BATON_ADMIN_TOKEN=quickstart-admin-secret
export SUPPORT_BOT_SECRET=support-bot-app-secret SUPPORT_BOT_VERIFY_TOKEN=support-bot-verify
export SUPPORT_BOT_API_TOKEN=support-bot-api-token SUPPORT_BOT_HOOK_SECRET=support-bot-hook
export BILLING_BOT_SECRET=billing-bot-app-secret BILLING_BOT_VERIFY_TOKEN=billing-bot-verify
export BILLING_BOT_API_TOKEN=billing-bot-api-token BILLING_BOT_HOOK_SECRET=billing-bot-hook
export PAGE_TOKEN_SUPPORT_BOT=PAGE_TOKEN_SUPPORT_BOT PAGE_TOKEN_BILLING_BOT=PAGE_TOKEN_BILLING_BOT

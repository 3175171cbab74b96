#!/usr/bin/env bash
# A walk through the wechatpay-chain command, with the settings of settings.py in the
# environment (WECHATPAY_MCHID, _SERIAL, _PRIVATE_KEY, _PUBLIC_KEY_ID, _PUBLIC_KEY,
# _APIV3_KEY; WECHATPAY_BASE_URL to aim at another host) and WECHATPAY_APPID.
#
#   bash cli_walkthrough.sh [OPENID]
#
# Optional: a notification saved as notification.headers + notification.body in the current
# folder is verified at the end (as your notify endpoint received it).
set -euo pipefail

openid="${1:-o-walkthrough}"
merchant=(--mchid "$WECHATPAY_MCHID" --serial "$WECHATPAY_SERIAL"
          --private-key "$WECHATPAY_PRIVATE_KEY")
trust=(--cert "$WECHATPAY_PUBLIC_KEY_ID=$WECHATPAY_PUBLIC_KEY")
host=(${WECHATPAY_BASE_URL:+--base-url "$WECHATPAY_BASE_URL"})

echo "== 1. platform certificates (decrypted with the APIv3 key, written as PEM files)"
wechatpay-chain certificates download "${merchant[@]}" "${trust[@]}" "${host[@]}" \
    --output certs/
ls certs/

echo "== 2. send a coupon (the body from a file; out_request_no makes a resend harmless)"
cat > coupon.json <<JSON
{"stock_id": "9856000", "out_request_no": "walkthrough-$openid",
 "appid": "$WECHATPAY_APPID", "stock_creator_mchid": "$WECHATPAY_MCHID"}
JSON
wechatpay-chain request 'v3/marketing/favor/users/{openid}/coupons' --method POST \
    --param "openid=$openid" --json @coupon.json "${merchant[@]}" "${trust[@]}" "${host[@]}"

echo "== 3. list that user's coupons, with the status line and headers"
wechatpay-chain request 'v3/marketing/favor/users/{openid}/coupons' --include \
    --param "openid=$openid" --query "appid=$WECHATPAY_APPID" \
    "${merchant[@]}" "${trust[@]}" "${host[@]}"

if [[ -f notification.headers && -f notification.body ]]; then
    echo "== 4. verify a saved notification"
    wechatpay-chain notification verify --headers notification.headers \
        --body notification.body "${trust[@]}"
fi
echo "== done"

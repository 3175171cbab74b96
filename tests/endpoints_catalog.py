"""WeChat Pay merchant API endpoints, as (method, template) pairs, for the endpoint sweep.

Every documented call comes from the schema the typed layer is generated from
(tools/endpoints.json, extracted from the wechatpay-im/website documentation), so the sweep
covers what the types cover. The table below is what the pages do not say, written from
pay.weixin.qq.com's documentation and the fake server's sweeps: each line's flags win over
the page's, and its few undocumented endpoints (old spellings, sandboxes) are swept too.
Placeholders carry the names the docs give them. ``v2/...`` templates are APIv2 (XML; sent
without the ``v2/`` prefix), the rest APIv3.

Flags after a line's template:

- ``security``: APIv2, the docs say 需要证书 (the merchant certificate, mutual TLS);
- ``download``: the answer is a file, not signed by WeChat Pay (bills, images; statements
  are signed, over their SHA-1);
- ``unsigned``: APIv2, a documented SUCCESS answer carries no ``sign``;
- ``upload``: multipart/form-data, signed over its ``meta`` part.

From a page (for a call the table does not list): ``security`` where its request lists
``security``, ``upload`` where it takes ``body=``, ``unsigned`` for APIv2 where its answer
table has no ``sign``; a page never says ``download``.

A line too long for the page continues after a backslash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from _paths import PROJECT

__all__ = ["CURATED", "DOCUMENTED", "ENDPOINTS", "FLAGS", "Endpoint"]

SCHEMA = PROJECT / "tools" / "endpoints.json"

FLAGS = frozenset({"security", "download", "unsigned", "upload"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    template: str
    security: bool = False
    download: bool = False
    unsigned: bool = False
    upload: bool = False

    @property
    def api(self) -> str:
        return "v2" if self.template.startswith("v2/") else "v3"

    @property
    def id(self) -> str:
        return f"{self.method} {self.template}"


_V3 = """
# Basic payments, direct merchants and service providers
POST v3/pay/transactions/jsapi
POST v3/pay/transactions/app
POST v3/pay/transactions/h5
POST v3/pay/transactions/native
POST v3/pay/transactions/codepay
POST v3/pay/transactions/jsapi-with-contract
POST v3/pay/transactions/app-with-contract
GET  v3/pay/transactions/id/{transaction_id}
GET  v3/pay/transactions/out-trade-no/{out_trade_no}
POST v3/pay/transactions/out-trade-no/{out_trade_no}/close
POST v3/pay/transactions/out-trade-no/{out_trade_no}/reverse
POST v3/pay/partner/transactions/jsapi
POST v3/pay/partner/transactions/app
POST v3/pay/partner/transactions/h5
POST v3/pay/partner/transactions/native
POST v3/pay/partner/transactions/codepay
POST v3/pay/partner/transactions/jsapi-with-contract
POST v3/pay/partner/transactions/app-with-contract
GET  v3/pay/partner/transactions/id/{transaction_id}
GET  v3/pay/partner/transactions/out-trade-no/{out_trade_no}
POST v3/pay/partner/transactions/out-trade-no/{out_trade_no}/close
POST v3/pay/partner/transactions/out-trade-no/{out_trade_no}/reverse

# Refunds
POST v3/refund/domestic/refunds
GET  v3/refund/domestic/refunds/{out_refund_no}
POST v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund

# Combined payments
POST v3/combine-transactions/app
POST v3/combine-transactions/h5
POST v3/combine-transactions/jsapi
POST v3/combine-transactions/native
POST v3/combine-transactions/miniprogram
GET  v3/combine-transactions/out-trade-no/{combine_out_trade_no}
POST v3/combine-transactions/out-trade-no/{combine_out_trade_no}/close

# Bills and platform certificates
GET  v3/bill/tradebill
GET  v3/bill/fundflowbill
GET  v3/bill/sub-merchant-fundflowbill
GET  v3/billdownload/file  download
GET  v3/certificates

# Profit sharing
POST v3/profitsharing/orders
GET  v3/profitsharing/orders/{out_order_no}
POST v3/profitsharing/orders/unfreeze
POST v3/profitsharing/return-orders
GET  v3/profitsharing/return-orders/{out_return_no}
GET  v3/profitsharing/transactions/{transaction_id}/amounts
GET  v3/profitsharing/merchant-configs/{sub_mchid}
POST v3/profitsharing/receivers/add
POST v3/profitsharing/receivers/delete
GET  v3/profitsharing/bills

# Chain brands: profit sharing, stores
GET  v3/brand/profitsharing/brand-configs/{brand_mchid}
POST v3/brand/profitsharing/orders
GET  v3/brand/profitsharing/orders
POST v3/brand/profitsharing/returnorders
GET  v3/brand/profitsharing/returnorders
POST v3/brand/profitsharing/finish-order
GET  v3/brand/profitsharing/orders/{transaction_id}/amounts
POST v3/brand/profitsharing/receivers/add
POST v3/brand/profitsharing/receivers/delete
POST v3/brand/partner/store/brandstores
GET  v3/brand/partner/store/brandstores
GET  v3/brand/partner/store/brandstores/{store_id}
PATCH v3/brand/partner/store/brandstores/{store_id}
POST v3/brand/partner/store/brandstores/{store_id}/close
POST v3/brand/partner/store/brandstores/{store_id}/resume
POST v3/brand/partner/store/brandstores/{store_id}/bindrecipient
POST v3/brand/partner/store/brandstores/{store_id}/unbindrecipient

# E-commerce (收付通): onboarding
POST v3/ecommerce/applyments/
GET  v3/ecommerce/applyments/{applyment_id}
GET  v3/ecommerce/applyments/out-request-no/{out_request_no}
POST v3/ecommerce/applyments/{applyment_id}/revoke
POST v3/ecommerce/applyments/out-request-no/{out_request_no}/revoke
POST v3/ecommerce/applyments/submit-account-hosting-applyment
POST v3/ecommerce/applyments/submit-sign-verify-info
POST v3/ecommerce/account/cancel-applications
GET  v3/ecommerce/account/cancel-applications/out-apply-no/{out_apply_no}
POST v3/ecommerce/account/cancel-applications/media  upload
POST v3/ecommerce/account/apply-cancel-withdraw
GET  v3/ecommerce/account/apply-cancel-withdraw/applyment-id/{applyment_id}
GET  v3/ecommerce/account/apply-cancel-withdraw/out-request-no/{out_request_no}
POST v3/ecommerce/account/apply-cancel-withdraw/confirm
GET  v3/ecommerce/account/apply-cancel-withdraw/validate-cancel/{sub_mchid}

# E-commerce: funds, profit sharing, refunds, subsidies, bills, transfers
GET  v3/ecommerce/fund/balance/{sub_mchid}
GET  v3/ecommerce/fund/enddaybalance/{sub_mchid}
POST v3/ecommerce/fund/withdraw
GET  v3/ecommerce/fund/withdraw/{withdraw_id}
GET  v3/ecommerce/fund/withdraw/out-request-no/{out_request_no}
POST v3/ecommerce/profitsharing/orders
GET  v3/ecommerce/profitsharing/orders
POST v3/ecommerce/profitsharing/returnorders
GET  v3/ecommerce/profitsharing/returnorders
POST v3/ecommerce/profitsharing/finish-order
GET  v3/ecommerce/profitsharing/orders/{transaction_id}/amounts
POST v3/ecommerce/profitsharing/receivers/add
POST v3/ecommerce/profitsharing/receivers/delete
POST v3/ecommerce/profitsharing/after-sales-orders
GET  v3/ecommerce/profitsharing/after-sales-orders
POST v3/ecommerce/refunds/apply
GET  v3/ecommerce/refunds/id/{refund_id}
GET  v3/ecommerce/refunds/out-refund-no/{out_refund_no}
POST v3/ecommerce/refunds/{refund_id}/return-advance
GET  v3/ecommerce/refunds/{refund_id}/return-advance
POST v3/ecommerce/refunds/{refund_id}/apply-abnormal-refund
POST v3/ecommerce/subsidies/create
POST v3/ecommerce/subsidies/return
POST v3/ecommerce/subsidies/cancel
GET  v3/ecommerce/bill/fundflowbill
POST v3/ecommerce/mch-transfer/transfer-bills
GET  v3/ecommerce/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}
POST v3/ecommerce/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel
GET  v3/ecommerce/mch-transfer/transfer-bills/transfer-bill-no/{transfer_bill_no}

# Service providers: onboarding, settlement accounts, identity confirmation
POST v3/applyment4sub/applyment/
GET  v3/applyment4sub/applyment/business_code/{business_code}
GET  v3/applyment4sub/applyment/applyment_id/{applyment_id}
GET  v3/apply4sub/sub_merchants/{sub_mchid}/settlement
POST v3/apply4sub/sub_merchants/{sub_mchid}/modify-settlement
GET  v3/apply4sub/sub_merchants/{sub_mchid}/application/{application_no}
POST v3/apply4subject/applyment
GET  v3/apply4subject/applyment
POST v3/apply4subject/applyment/{applyment_id}/cancel
POST v3/apply4subject/applyment/{business_code}/cancel
GET  v3/apply4subject/applyment/merchants/{sub_mchid}/state

# Bank and region lookups
GET  v3/capital/capitallhh/banks/search-banks-by-bank-account
GET  v3/capital/capitallhh/banks/personal-banking
GET  v3/capital/capitallhh/banks/corporate-banking
GET  v3/capital/capitallhh/banks/{bank_alias_code}/branches
GET  v3/capital/capitallhh/areas/provinces
GET  v3/capital/capitallhh/areas/provinces/{province_code}/cities

# Media uploads
POST v3/merchant/media/upload  upload
POST v3/merchant/media/video_upload  upload

# Merchant funds
GET  v3/merchant/fund/balance/{account_type}
GET  v3/merchant/fund/dayendbalance/{account_type}
POST v3/merchant/fund/withdraw
GET  v3/merchant/fund/withdraw/out-request-no/{out_request_no}
GET  v3/merchant/fund/withdraw/withdraw-id/{withdraw_id}
GET  v3/merchant/fund/withdraw/bill-type/{bill_type}

# Consumer complaints
GET  v3/merchant-service/complaints-v2
GET  v3/merchant-service/complaints-v2/{complaint_id}
GET  v3/merchant-service/complaints-v2/{complaint_id}/negotiation-historys
POST v3/merchant-service/complaints-v2/{complaint_id}/response
POST v3/merchant-service/complaints-v2/{complaint_id}/complete
POST v3/merchant-service/complaints-v2/{complaint_id}/update-refund-progress
POST v3/merchant-service/complaints-v2/{complaint_id}/response-immediate-service
GET  v3/merchant-service/complaints
GET  v3/merchant-service/complaints/{transaction_id}
GET  v3/merchant-service/complaints/{transaction_id}/negotiation-historys
POST v3/merchant-service/complaint-notifications
GET  v3/merchant-service/complaint-notifications
PUT  v3/merchant-service/complaint-notifications
DELETE v3/merchant-service/complaint-notifications
POST v3/merchant-service/images/upload  upload
GET  v3/merchant-service/images/{media_id}  download

# Merchant violation notices
POST v3/merchant-risk-manage/violation-notifications
GET  v3/merchant-risk-manage/violation-notifications
PUT  v3/merchant-risk-manage/violation-notifications
DELETE v3/merchant-risk-manage/violation-notifications

# Electronic invoices (fapiao)
POST v3/new-tax-control-fapiao/card-template
GET  v3/new-tax-control-fapiao/merchant/base-information
GET  v3/new-tax-control-fapiao/merchant/development-config
PATCH v3/new-tax-control-fapiao/merchant/development-config
GET  v3/new-tax-control-fapiao/merchant/tax-codes
GET  v3/new-tax-control-fapiao/merchant/{sub_mchid}/check
GET  v3/new-tax-control-fapiao/user-title
GET  v3/new-tax-control-fapiao/user-title/title-url
POST v3/new-tax-control-fapiao/fapiao-applications
GET  v3/new-tax-control-fapiao/fapiao-applications/{fapiao_apply_id}
GET  v3/new-tax-control-fapiao/fapiao-applications/{fapiao_apply_id}/fapiao-files
POST v3/new-tax-control-fapiao/fapiao-applications/{fapiao_apply_id}/reverse
POST v3/new-tax-control-fapiao/fapiao-applications/{fapiao_apply_id}/insert-cards
POST v3/new-tax-control-fapiao/fapiao-applications/upload-fapiao-file  upload
GET  v3/new-tax-control-fapiao/download-invoice-file  download

# Transfers: batches (old), to users' balance (new), electronic receipts
POST v3/transfer/batches
GET  v3/transfer/batches/batch-id/{batch_id}
GET  v3/transfer/batches/batch-id/{batch_id}/details/detail-id/{detail_id}
GET  v3/transfer/batches/out-batch-no/{out_batch_no}
GET  v3/transfer/batches/out-batch-no/{out_batch_no}/details/out-detail-no/{out_detail_no}
POST v3/transfer/bill-receipt
GET  v3/transfer/bill-receipt/{out_batch_no}
POST v3/transfer-detail/electronic-receipts
GET  v3/transfer-detail/electronic-receipts
GET  v3/transferdownload/signfile  download
GET  v3/transferdownload/elecvoucherfile  download
POST v3/partner-transfer/batches
GET  v3/partner-transfer/batches/batch-id/{batch_id}
GET  v3/partner-transfer/batches/batch-id/{batch_id}/details/detail-id/{detail_id}
GET  v3/partner-transfer/batches/out-batch-no/{out_batch_no}
GET  v3/partner-transfer/batches/out-batch-no/{out_batch_no}/details/out-detail-no/{out_detail_no}
POST v3/fund-app/mch-transfer/transfer-bills
GET  v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}
POST v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel
GET  v3/fund-app/mch-transfer/transfer-bills/transfer-bill-no/{transfer_bill_no}
POST v3/fund-app/mch-transfer/elecsign/out-bill-no
GET  v3/fund-app/mch-transfer/elecsign/out-bill-no/{out_bill_no}
POST v3/fund-app/mch-transfer/elecsign/transfer-bill-no
GET  v3/fund-app/mch-transfer/elecsign/transfer-bill-no/{transfer_bill_no}
GET  v3/fund-app/mch-transfer/user-confirm-authorization/out-authorization-no/{out_authorization_no}
POST v3/fund-app/mch-transfer/partner/transfer-bills
GET  v3/fund-app/mch-transfer/partner/transfer-bills/out-bill-no/{out_bill_no}
POST v3/fund-app/mch-transfer/partner/transfer-bills/out-bill-no/{out_bill_no}/cancel

# Marketing: cash coupons (代金券)
POST v3/marketing/favor/coupon-stocks
GET  v3/marketing/favor/stocks
GET  v3/marketing/favor/stocks/{stock_id}
POST v3/marketing/favor/stocks/{stock_id}/start
POST v3/marketing/favor/stocks/{stock_id}/pause
POST v3/marketing/favor/stocks/{stock_id}/restart
GET  v3/marketing/favor/stocks/{stock_id}/merchants
GET  v3/marketing/favor/stocks/{stock_id}/items
GET  v3/marketing/favor/stocks/{stock_id}/use-flow
GET  v3/marketing/favor/stocks/{stock_id}/refund-flow
POST v3/marketing/favor/users/{openid}/coupons
GET  v3/marketing/favor/users/{openid}/coupons
GET  v3/marketing/favor/users/{openid}/coupons/{coupon_id}
POST v3/marketing/favor/callbacks
POST v3/marketing/favor/media/image-upload  upload

# Marketing: merchant coupons (商家券)
POST v3/marketing/busifavor/stocks
GET  v3/marketing/busifavor/stocks/{stock_id}
PATCH v3/marketing/busifavor/stocks/{stock_id}
PATCH v3/marketing/busifavor/stocks/{stock_id}/budget
POST v3/marketing/busifavor/stocks/{stock_id}/couponcodes
GET  v3/marketing/busifavor/stocks/{stock_id}/couponcodes
POST v3/marketing/busifavor/coupons/use
POST v3/marketing/busifavor/coupons/associate
POST v3/marketing/busifavor/coupons/disassociate
POST v3/marketing/busifavor/coupons/return
POST v3/marketing/busifavor/coupons/deactivate
POST v3/marketing/busifavor/coupons/{card_id}/send
GET  v3/marketing/busifavor/users/{openid}/coupons
GET  v3/marketing/busifavor/users/{openid}/coupons/{coupon_code}/appids/{appid}
POST v3/marketing/busifavor/callbacks
GET  v3/marketing/busifavor/callbacks
POST v3/marketing/busifavor/subsidy/pay-receipts
GET  v3/marketing/busifavor/subsidy/pay-receipts
GET  v3/marketing/busifavor/subsidy/pay-receipts/{subsidy_receipt_id}

# Marketing: delegated marketing, pay-gift activities, member cards, bank packages, receipts
POST v3/marketing/partnerships/build
POST v3/marketing/partnerships/terminate
GET  v3/marketing/partnerships
POST v3/marketing/paygiftactivity/unique-threshold-activity
GET  v3/marketing/paygiftactivity/activities
GET  v3/marketing/paygiftactivity/activities/{activity_id}
GET  v3/marketing/paygiftactivity/activities/{activity_id}/merchants
GET  v3/marketing/paygiftactivity/activities/{activity_id}/goods
POST v3/marketing/paygiftactivity/activities/{activity_id}/terminate
POST v3/marketing/paygiftactivity/activities/{activity_id}/merchants/add
POST v3/marketing/paygiftactivity/activities/{activity_id}/merchants/delete
POST v3/marketing/membercard-activity/activities
GET  v3/marketing/membercard-activity/activities
GET  v3/marketing/membercard-activity/activities/{activity_id}
POST v3/marketing/membercard-activity/activities/{activity_id}/terminate
POST v3/marketing/membercard-open/cards
GET  v3/marketing/membercard-open/cards
GET  v3/marketing/membercard-open/cards/{card_id}
PATCH v3/marketing/membercard-open/cards/{card_id}
GET  v3/marketing/membercard-open/cards/{card_id}/codes/{code}
POST v3/marketing/membercard-open/cards/{card_id}/codes/deposit
POST v3/marketing/membercard-open/cards/{card_id}/codes/{code}/unavailable
GET  v3/marketing/membercard-open/activate-informations/{activate_ticket}
POST v3/marketing/membercard-open/phonenumber-member/import
POST v3/marketing/membercard-open/cards/{card_id}/users/import
POST v3/marketing/bank/packages/{package_id}/tasks  upload
POST v3/marketing/shopping-receipt/shoppingreceipts  upload

# Smart guides, gold plan, business circles
POST v3/smartguide/guides
GET  v3/smartguide/guides
PATCH v3/smartguide/guides/{guide_id}
POST v3/smartguide/guides/{guide_id}/assign
POST v3/goldplan/merchants/changegoldplanstatus
POST v3/goldplan/merchants/changecustompagestatus
POST v3/goldplan/merchants/set-advertising-industry-filter
POST v3/goldplan/merchants/open-advertising-show
POST v3/goldplan/merchants/close-advertising-show
POST v3/businesscircle/points/notify
GET  v3/businesscircle/user-authorizations/{openid}
GET  v3/businesscircle/users/{openid}/points/commit_status
POST v3/businesscircle/parkings

# Pay score (支付分)
POST v3/payscore/serviceorder
GET  v3/payscore/serviceorder
POST v3/payscore/serviceorder/{out_order_no}/cancel
POST v3/payscore/serviceorder/{out_order_no}/modify
POST v3/payscore/serviceorder/{out_order_no}/complete
POST v3/payscore/serviceorder/{out_order_no}/pay
POST v3/payscore/serviceorder/{out_order_no}/sync
POST v3/payscore/serviceorder/direct-complete
POST v3/payscore/permissions
GET  v3/payscore/permissions/authorization-code/{authorization_code}
POST v3/payscore/permissions/authorization-code/{authorization_code}/terminate
GET  v3/payscore/permissions/openid/{openid}
POST v3/payscore/permissions/openid/{openid}/terminate
GET  v3/payscore/user-service-state
POST v3/payscore/users/{openid}/permissions/{service_id}/terminate
GET  v3/payscore/merchant-bill
POST v3/payscore/payafter-orders
POST v3/payscore/payafter-orders/{out_order_no}/cancel
POST v3/payscore/payafter-orders/{out_order_no}/complete
POST v3/payscore/smartretail-orders
POST v3/payscore/smartretail-orders/{out_order_no}/cancel
POST v3/payscore/smartretail-orders/{out_order_no}/complete
POST v3/payscore/partner/serviceorder
GET  v3/payscore/partner/serviceorder
POST v3/payscore/partner/serviceorder/{out_order_no}/cancel
POST v3/payscore/partner/serviceorder/{out_order_no}/modify
POST v3/payscore/partner/serviceorder/{out_order_no}/complete
POST v3/payscore/partner/serviceorder/{out_order_no}/pay
POST v3/payscore/partner/serviceorder/{out_order_no}/sync
POST v3/payscore/partner/permissions
GET  v3/payscore/partner/permissions/authorization-code/{authorization_code}
POST v3/payscore/partner/permissions/authorization-code/{authorization_code}/terminate
POST v3/payscore/plan/payscore-plans
GET  v3/payscore/plan/payscore-plans/merchant-plan-no/{merchant_plan_no}
POST v3/payscore/plan/payscore-plans/merchant-plan-no/{merchant_plan_no}/stop
POST v3/payscore/sign-plan/user-sign-plans
GET  v3/payscore/sign-plan/user-sign-plans/merchant-sign-plan-no/{merchant_sign_plan_no}
POST v3/payscore/sign-plan/user-sign-plans/merchant-sign-plan-no/{merchant_sign_plan_no}/stop
POST v3/payscore/sign-plan/serviceorder

# Entrusted deduction (委托代扣)
GET  v3/papay/sign/contracts/plan-id/{plan_id}/out-contract-code/{out_contract_code}
POST v3/papay/sign/contracts/plan-id/{plan_id}/out-contract-code/{out_contract_code}/terminate
GET  v3/papay/sign/partner/contracts/plan-id/{plan_id}/out-contract-code/{out_contract_code}
POST v3/papay/sign/partner/contracts/plan-id/{plan_id}/out-contract-code/\
{out_contract_code}/terminate
POST v3/papay/pay/transactions/apply
POST v3/papay/pay/partner/transactions/apply
POST v3/papay/scheduled-deduct-sign/contracts/pre-entrust-sign/app
POST v3/papay/scheduled-deduct-sign/contracts/pre-entrust-sign/h5
POST v3/papay/scheduled-deduct-sign/contracts/pre-entrust-sign/jsapi
POST v3/papay/scheduled-deduct-sign/contracts/pre-entrust-sign/mini-program
POST v3/papay/insurance-sign/contracts/pre-entrust-sign/app
POST v3/papay/insurance-sign/contracts/pre-entrust-sign/h5
POST v3/papay/insurance-sign/contracts/pre-entrust-sign/jsapi
POST v3/papay/insurance-sign/contracts/pre-entrust-sign/mini-program
POST v3/papay/insurance-pay/transactions/apply

# Parking (支付分停车)
GET  v3/vehicle/parking/services/find
POST v3/vehicle/parking/parkings
POST v3/vehicle/transactions/parking
GET  v3/vehicle/transactions/out-trade-no/{out_trade_no}

# Cross-border (境外)
POST v3/global/transactions/app
POST v3/global/transactions/jsapi
POST v3/global/transactions/mweb
POST v3/global/transactions/native
GET  v3/global/transactions/id/{transaction_id}
GET  v3/global/transactions/out-trade-no/{out_trade_no}
POST v3/global/transactions/id/{transaction_id}/close
POST v3/global/transactions/out-trade-no/{out_trade_no}/close
POST v3/global/micropay/transactions/pay
POST v3/global/micropay/transactions/id/{transaction_id}/reverse
POST v3/global/micropay/transactions/out-trade-no/{out_trade_no}/reverse
POST v3/global/refunds
GET  v3/global/refunds/id/{refund_id}
GET  v3/global/refunds/out-refund-no/{out_refund_no}
GET  v3/global/statements
GET  v3/statements
GET  v3/global/settle/settlements
GET  v3/global/certificates
POST v3/global/merchants
GET  v3/global/merchants/{sub_mchid}
POST v3/global/merchant/media/upload  upload
POST v3/global/merchant-storage/file/upload  upload
POST v3/global/customs/orders
GET  v3/global/customs/orders
PATCH v3/global/customs/orders
POST v3/global/customs/redeclare
POST v3/global/customs/verify-certificate
POST v3/global/profit-sharing/orders
GET  v3/global/profit-sharing/orders/{out_order_no}
POST v3/global/profit-sharing/orders/unfreeze
POST v3/global/profit-sharing/receivers
GET  v3/global/profit-sharing/receivers/{account}
GET  v3/global/profit-sharing/transactions/{transaction_id}/amounts
GET  v3/global/merchant-service/complaints
GET  v3/global/merchant-service/complaints/{complaint_id}
GET  v3/global/merchant-service/complaints/{complaint_id}/negotiation-historys
POST v3/global/merchant-service/complaints/{complaint_id}/response
POST v3/global/merchant-service/complaints/{complaint_id}/complete
POST v3/global/merchant-service/images/upload  upload
GET  v3/global/merchant-service/images/{media_id}  download
"""

_V2 = """
# Basic payments
POST v2/pay/unifiedorder
POST v2/pay/orderquery
POST v2/pay/closeorder
POST v2/pay/micropay
POST v2/pay/refundquery
POST v2/pay/refundqueryv2
POST v2/secapi/pay/refund  security
POST v2/secapi/pay/refundv2  security
POST v2/secapi/pay/reverse  security
POST v2/tools/shorturl
POST v2/tools/authcodetoopenid
POST v2/payitil/report  unsigned
POST v2/pay/combinedorder
POST v2/pay/querycombinedorder
POST v2/pay/closecombinedorder
POST v2/pay/queryexchagerate
POST v2/pay/settlementquery

# Bills and order comments
POST v2/pay/downloadbill  download unsigned
POST v2/pay/downloadfundflow  security download unsigned
POST v2/billcommentsp/batchquerycomment  security download unsigned

# Profit sharing
POST v2/pay/profitsharingaddreceiver
POST v2/pay/profitsharingremovereceiver
POST v2/pay/profitsharingquery
POST v2/pay/profitsharingreturnquery
POST v2/pay/profitsharingorderamountquery
POST v2/pay/profitsharingmerchantratioquery
POST v2/secapi/pay/profitsharing  security
POST v2/secapi/pay/multiprofitsharing  security
POST v2/secapi/pay/profitsharingfinish  security
POST v2/secapi/pay/profitsharingreturn  security

# Transfers, red packets, coupons
POST v2/mmpaymkttransfers/promotion/transfers  security unsigned
POST v2/mmpaymkttransfers/gettransferinfo  security unsigned
POST v2/mmpaysptrans/pay_bank  security unsigned
POST v2/mmpaysptrans/query_bank  security unsigned
POST v2/mmpaymkttransfers/query_bank  security unsigned
POST v2/risk/getpublickey  security unsigned
POST v2/mmpaymkttransfers/sendredpack  security unsigned
POST v2/mmpaymkttransfers/sendgroupredpack  security unsigned
POST v2/mmpaymkttransfers/sendminiprogramhb  security unsigned
POST v2/mmpaymkttransfers/gethbinfo  security unsigned
POST v2/mmpaymkttransfers/promotion/paywwsptrans2pocket  security unsigned
POST v2/mmpaymkttransfers/promotion/querywwsptrans2pocket  security unsigned
POST v2/mmpaymkttransfers/sendworkwxredpack  security
POST v2/mmpaymkttransfers/queryworkwxredpack  security
POST v2/mmpaymkttransfers/send_coupon  security
POST v2/mmpaymkttransfers/query_coupon_stock
POST v2/mmpaymkttransfers/querycouponsinfo

# Entrusted deduction (委托代扣)
GET  v2/papay/entrustweb  unsigned
GET  v2/papay/h5entrustweb  unsigned
GET  v2/papay/partner/entrustweb  unsigned
GET  v2/papay/partner/h5entrustweb  unsigned
POST v2/papay/querycontract
POST v2/papay/deletecontract
POST v2/papay/partner/querycontract
POST v2/papay/partner/deletecontract
POST v2/pay/contractorder
POST v2/pay/pappayapply
POST v2/pay/paporderquery
POST v2/pay/partner/pappayapply
POST v2/pay/partner/paporderquery

# Service providers: sub-merchants, development settings, risk
POST v2/secapi/mch/addInstitutionsub  security
POST v2/secapi/mch/modifyInstitutionsub  security
POST v2/secapi/mch/queryInstitutionsub  security
POST v2/secapi/mch/submchmanage  security unsigned
POST v2/secapi/mch/modifymchinfo  security
POST v2/secapi/mch/addsubdevconfig  security
POST v2/secapi/mch/querysubdevconfig  security
POST v2/secapi/mch/channelsetting  security
POST v2/secapi/mkt/addrecommendconf  security
POST v2/secapi/mch/uploadmedia  security upload
POST v2/mchrisk/querymchrisk  unsigned
POST v2/mchrisk/setmchriskcallback  unsigned
POST v2/mchrisk/syncmchriskresult  unsigned
POST v2/mchrisk/bankquerymchauditinfo  security
POST v2/mchrisk/channelquerymchauditinfo  security
POST v2/risk/getviolation  unsigned
POST v2/risk/getcertficates
POST v2/fund/queryautowithdrawbydate
POST v2/fund/reautowithdrawbydate

# Micro merchants (小微)
POST v2/applyment/micro/submit  security
POST v2/applyment/micro/getstate  security
POST v2/applyment/micro/submitupgrade  security
POST v2/applyment/micro/getupgradestate  security
POST v2/applyment/micro/modifyarchives  security
POST v2/applyment/micro/modifycontactinfo  security

# Face payments and deposits
POST v2/pay/facepay
POST v2/pay/facepayquery
POST v2/secapi/pay/facepayreverse  security
POST v2/face/get_wxpayface_authinfo
POST v2/deposit/unifiedorder
POST v2/deposit/micropay
POST v2/deposit/facepay
POST v2/deposit/orderquery
POST v2/deposit/reverse  security
POST v2/deposit/consume  security
POST v2/deposit/refund  security
POST v2/deposit/refundquery

# Customs declaration
POST v2/cgi-bin/mch/customs/customdeclareorder
POST v2/cgi-bin/mch/customs/customdeclarequery
POST v2/cgi-bin/mch/newcustoms/customdeclareredeclare

# Vehicle owner platform, transit, deposit-free rentals and stays
POST v2/vehicle/pay/payapply
POST v2/vehicle/pay/querystate
POST v2/vehicle/pay/notification
POST v2/vehicle/partnerpay/payapply
POST v2/vehicle/partnerpay/querystate
POST v2/vehicle/partnerpay/notification
POST v2/transit/queryorder
POST v2/transit/partnerpay/queryorder
POST v2/wxv/createrentbill
POST v2/wxv/queryrentbill
POST v2/wxv/finishrentbill
POST v2/wxv/cancelbill
POST v2/wxv/changerentmoney
POST v2/wxv/createhotelbill
POST v2/wxv/queryhotelbill
POST v2/wxv/finishhotelbill

# Sandbox
POST v2/sandboxnew/pay/getsignkey  unsigned
POST v2/sandboxnew/pay/unifiedorder
POST v2/sandboxnew/pay/micropay
POST v2/sandboxnew/pay/orderquery
POST v2/sandboxnew/pay/refund
POST v2/sandboxnew/pay/refundquery
POST v2/sandboxnew/pay/downloadbill  download unsigned
POST v2/xdc/apiv2getsignkey/sign/getsignkey  unsigned
POST v2/xdc/apiv2sandbox/pay/micropay
POST v2/xdc/apiv2sandbox/pay/orderquery
"""


def _parse(table: str) -> tuple[Endpoint, ...]:
    found: list[Endpoint] = []
    for line in table.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        method, template, *flags = line.split()
        unknown = set(flags) - FLAGS
        if unknown:
            raise ValueError(f"{line!r}: unknown flag(s) {sorted(unknown)}")
        found.append(Endpoint(method, template, **{flag: True for flag in flags}))
    return tuple(found)


def _documented() -> tuple[Endpoint, ...]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    found = []
    for call in schema["endpoints"]:
        request = {field["n"] for field in call["request"]}
        answer = {field["n"] for field in call["response"]}
        v2 = call["template"].startswith("v2/")
        found.append(
            Endpoint(
                call["method"],
                call["template"],
                security=v2 and "security" in request,
                upload="body" in request,
                unsigned=v2 and bool(answer) and "sign" not in answer,
            )
        )
    return tuple(found)


def _merge(documented: tuple[Endpoint, ...], curated: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    """Documented calls in schema order, the table's flags winning; then the table's others."""
    table = {e.id: e for e in curated}
    merged = []
    for e in documented:
        known = table.pop(e.id, None)
        if known is not None:
            e = replace(known, security=known.security or e.security)
        merged.append(e)
    return (*merged, *table.values())


CURATED: tuple[Endpoint, ...] = _parse(_V3) + _parse(_V2)
DOCUMENTED: tuple[Endpoint, ...] = _documented()
ENDPOINTS: tuple[Endpoint, ...] = _merge(DOCUMENTED, CURATED)

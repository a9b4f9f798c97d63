/* bank: an account is an actor holding a balance; deposits and transfers
 * are method calls, run one at a time in the order each caller made them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rayc.h"

typedef struct {
    int64_t balance;
    int64_t ops;
} account;

static int64_t arg_i64(const rayc_buf *a)
{
    int64_t v = 0;
    if (a->size == sizeof(v))
        memcpy(&v, a->data, sizeof(v));
    return v;
}

static void *account_new(rayc_ctx *ctx, const rayc_buf *args, size_t nargs)
{
    account *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        rayc_fail(ctx, "out of memory");
        return NULL;
    }
    a->balance = nargs > 0 ? arg_i64(&args[0]) : 0;
    if (a->balance < 0) {
        free(a);
        rayc_fail(ctx, "an account cannot open with a negative balance");
        return NULL;
    }
    return a;
}

static void account_free(void *self)
{
    free(self);
}

/* deposit(amount) -> the new balance */
static int deposit(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    account *a = self;
    if (nargs != 1)
        return rayc_fail(ctx, "deposit takes one amount");
    a->balance += arg_i64(&args[0]);
    a->ops++;
    return rayc_return(ctx, 0, &a->balance, sizeof(a->balance));
}

/* withdraw(amount) -> the new balance; fails (the account lives on) when
 * the balance is short. */
static int withdraw(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    account *a = self;
    int64_t amount = nargs == 1 ? arg_i64(&args[0]) : 0;
    if (amount > a->balance)
        return rayc_fail(ctx, "insufficient funds: balance %lld, asked %lld", (long long)a->balance,
                         (long long)amount);
    a->balance -= amount;
    a->ops++;
    return rayc_return(ctx, 0, &a->balance, sizeof(a->balance));
}

static int balance(rayc_ctx *ctx, void *self, const rayc_buf *args, size_t nargs)
{
    account *a = self;
    (void)args, (void)nargs;
    return rayc_return(ctx, 0, &a->balance, sizeof(a->balance));
}

RAYC_ACTOR(Account, account_new, account_free)
RAYC_METHOD(Account, deposit)
RAYC_METHOD(Account, withdraw)
RAYC_METHOD(Account, balance)

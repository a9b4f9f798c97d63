/* bank: two accounts as actors, 1,000 deposits each, transfers, an
 * overdraft that fails without harming the account, and a named account
 * found again by name. */
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rayc.h"

#define DEPOSITS 1000

static void library_path(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(out, len, "%s/libbank_tasks.so", dirname(self));
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bank: %s: %s: %s\n", what, rayc_strerror(rc), rayc_last_error());
    return 1;
}

/* Call method(amount) on a and return the balance it answers. */
static int call(rayc_actor a, const char *method, int64_t amount, int64_t *out)
{
    rayc_arg arg = RAYC_VAL(&amount, sizeof(amount));
    rayc_ref r;
    int rc = rayc_actor_call(a, method, &arg, 1, NULL, &r);
    if (rc != RAYC_OK)
        return rc;
    rayc_value v;
    rc = rayc_get(&r, 1, &v, 60000);
    if (rc == RAYC_OK)
        memcpy(out, v.data, sizeof(*out));
    else
        fprintf(stderr, "bank: %s(%lld) failed as expected: %s\n", method, (long long)amount,
                v.error ? v.error : rayc_last_error());
    rayc_value_release(&v);
    rayc_ref_release(r);
    return rc;
}

int main(void)
{
    char lib[PATH_MAX];
    library_path(lib, sizeof(lib));
    const char *code[] = {lib, NULL};
    rayc_init_opts opts = {.code = code, .namespace_ = "bank"};
    int rc = rayc_init(&opts);
    if (rc != RAYC_OK)
        return fail("rayc_init", rc);
    int64_t opening = 100;
    rayc_arg open_arg = RAYC_VAL(&opening, sizeof(opening));
    rayc_actor alice, bob;
    rayc_actor_opts named = {.name = "alice"};
    if ((rc = rayc_actor_create("Account", &open_arg, 1, &named, &alice)) != RAYC_OK ||
        (rc = rayc_actor_create("Account", &open_arg, 1, NULL, &bob)) != RAYC_OK)
        return fail("rayc_actor_create", rc);

    /* 1,000 deposits of 1 to each, all in flight at once. */
    rayc_ref refs[2 * DEPOSITS];
    int64_t one = 1;
    rayc_arg arg = RAYC_VAL(&one, sizeof(one));
    for (int i = 0; i < DEPOSITS; i++) {
        if ((rc = rayc_actor_call(alice, "deposit", &arg, 1, NULL, &refs[2 * i])) != RAYC_OK ||
            (rc = rayc_actor_call(bob, "deposit", &arg, 1, NULL, &refs[2 * i + 1])) != RAYC_OK)
            return fail("rayc_actor_call", rc);
    }
    /* In call order, so the last deposit's answer is the final balance. */
    rayc_value v[2];
    if ((rc = rayc_get(&refs[2 * DEPOSITS - 2], 2, v, 60000)) != RAYC_OK)
        return fail("rayc_get", rc);
    int64_t a_bal, b_bal;
    memcpy(&a_bal, v[0].data, sizeof(a_bal));
    memcpy(&b_bal, v[1].data, sizeof(b_bal));
    rayc_value_release(&v[0]);
    rayc_value_release(&v[1]);
    for (int i = 0; i < 2 * DEPOSITS; i++)
        rayc_ref_release(refs[i]);
    printf("after %d deposits: alice %lld, bob %lld\n", DEPOSITS, (long long)a_bal,
           (long long)b_bal);

    /* A transfer of 250 from alice to bob; then an overdraft of bob. */
    int64_t after;
    if ((rc = call(alice, "withdraw", 250, &after)) != RAYC_OK)
        return fail("withdraw", rc);
    if ((rc = call(bob, "deposit", 250, &after)) != RAYC_OK)
        return fail("deposit", rc);
    int overdraft = call(bob, "withdraw", 1000000, &after);

    /* Find alice again by her name, as another driver of the namespace would. */
    rayc_actor found;
    if ((rc = rayc_actor_get("alice", NULL, &found)) != RAYC_OK)
        return fail("rayc_actor_get", rc);
    int64_t a_final, b_final;
    if ((rc = call(found, "balance", 0, &a_final)) != RAYC_OK ||
        (rc = call(bob, "balance", 0, &b_final)) != RAYC_OK)
        return fail("balance", rc);
    printf("after the transfer: alice %lld, bob %lld (the overdraft was refused: %s)\n",
           (long long)a_final, (long long)b_final, rayc_strerror(overdraft));
    rayc_shutdown();
    int ok = a_bal == opening + DEPOSITS && b_bal == opening + DEPOSITS && a_final == a_bal - 250 &&
             b_final == b_bal + 250 && overdraft == RAYC_ETASK;
    return ok ? 0 : 1;
}

/* Claim rules of a verified token; see jwt.h. Times are wall-clock seconds
 * since the epoch, as JWTs carry them. */
#include "worker/auth/jwt.h"

#include <string.h>

/* No NUL in any string (PostgreSQL's jsonb refuses \u0000 as text, and a
 * NUL would cut C strings short). jansson already refuses NUL in keys. */
static bool has_nul(const json_t *v, int depth)
{
    const char *key;
    json_t *item;
    size_t i;

    if (depth > 64)
        return true;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return strlen(json_string_value(v)) != json_string_length(v);
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, key, item)
            if (has_nul(item, depth + 1))
                return true;
        return false;
    case JSON_ARRAY:
        json_array_foreach(v, i, item)
            if (has_nul(item, depth + 1))
                return true;
        return false;
    default:
        return false;
    }
}

/* Reads an optional integer claim. Returns false when present and not an
 * integer. */
static bool int_claim(const json_t *claims, const char *name, bool *present,
                      json_int_t *out)
{
    const json_t *v = json_object_get(claims, name);

    *present = v != NULL;
    if (!v)
        return true;
    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

static enum rw_jwt_reason check_times(const struct rw_jwt_params *p, const json_t *claims,
                                      time_t now)
{
    json_int_t exp = 0, nbf = 0, iat = 0, t = (json_int_t)now, leeway = p->leeway_s;
    bool has_exp, has_nbf, has_iat;

    if (!int_claim(claims, "exp", &has_exp, &exp) ||
        !int_claim(claims, "nbf", &has_nbf, &nbf) ||
        !int_claim(claims, "iat", &has_iat, &iat))
        return RW_JWT_BAD_TIME_CLAIM;
    if (!has_exp)
        return RW_JWT_MISSING_EXP;
    /* compare without overflow: exp + leeway <= now  <=>  exp <= now - leeway */
    if (exp <= t - leeway)
        return RW_JWT_EXPIRED;
    if (has_nbf && nbf > t + leeway)
        return RW_JWT_NOT_YET_VALID;
    if (has_iat && iat > t + leeway)
        return RW_JWT_IAT_FUTURE;
    return RW_JWT_OK;
}

static bool string_is(const json_t *v, const char *want)
{
    return json_is_string(v) && json_string_length(v) == strlen(want) &&
           memcmp(json_string_value(v), want, json_string_length(v)) == 0;
}

static enum rw_jwt_reason check_audience(const char *want, const json_t *aud)
{
    size_t i;
    json_t *item;
    bool found = false;

    if (json_is_string(aud))
        return string_is(aud, want) ? RW_JWT_OK : RW_JWT_BAD_AUDIENCE;
    if (!json_is_array(aud) || json_array_size(aud) == 0)
        return RW_JWT_BAD_AUDIENCE;
    json_array_foreach(aud, i, item) {
        if (!json_is_string(item))
            return RW_JWT_BAD_AUDIENCE;
        if (string_is(item, want))
            found = true;
    }
    return found ? RW_JWT_OK : RW_JWT_BAD_AUDIENCE;
}

static enum rw_jwt_reason check_subject(const json_t *sub)
{
    if (!json_is_string(sub))
        return RW_JWT_BAD_SUBJECT;
    size_t n = json_string_length(sub);
    if (n == 0 || n > RW_JWT_MAX_SUB || strlen(json_string_value(sub)) != n)
        return RW_JWT_BAD_SUBJECT;
    return RW_JWT_OK;
}

enum rw_jwt_reason rw_jwt_check_claims(const struct rw_jwt_params *p,
                                       const json_t *claims, time_t now)
{
    enum rw_jwt_reason r;

    if (!json_is_object(claims))
        return RW_JWT_BAD_CLAIMS;
    r = check_times(p, claims, now);
    if (r != RW_JWT_OK)
        return r;
    if (p->issuer && !string_is(json_object_get(claims, "iss"), p->issuer))
        return RW_JWT_BAD_ISSUER;
    if (p->audience) {
        r = check_audience(p->audience, json_object_get(claims, "aud"));
        if (r != RW_JWT_OK)
            return r;
    }
    r = check_subject(json_object_get(claims, "sub"));
    if (r != RW_JWT_OK)
        return r;
    if (has_nul(claims, 0))
        return RW_JWT_BAD_CLAIMS;
    return RW_JWT_OK;
}

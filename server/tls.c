/* tls.c - loading the HTTPS certificate and key. libmicrohttpd would refuse a
 * bad pair too, but only with "cannot start"; checking with GnuTLS (the
 * library MHD itself uses) first gives a start error that names the file. */
#include "tls.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/file.h"

#define TLS_FILE_MAX (1L << 20) /* a PEM chain is a few KiB */

void tls_pem_free(tls_pem *pem)
{
    free(pem->cert);
    file_secret_free(pem->key);
    pem->cert = NULL;
    pem->key = NULL;
}

/* The file as new memory, or NULL with err naming it. */
static char *tls_read(const char *key, const char *path, size_t *len, char *err, size_t errlen)
{
    const char *why = "";
    char *text = file_read_all(path, TLS_FILE_MAX, len, &why);
    if (!text)
        snprintf(err, errlen, "tls.%s \"%s\": cannot read: %s", key, path, why);
    else if (strlen(text) != *len) {
        snprintf(err, errlen, "tls.%s \"%s\": not a PEM file (holds NUL bytes)", key, path);
        file_secret_free(text);
        text = NULL;
    }
    return text;
}

/* Parses the certificate and the key each on its own, so that an error
 * names its file, then the pair (GNUTLS_E_CERTIFICATE_KEY_MISMATCH). */
static int tls_check_pair(const config_t *cfg, const tls_pem *pem, char *err, size_t errlen)
{
    gnutls_datum_t cert = {(unsigned char *)pem->cert, (unsigned)strlen(pem->cert)};
    gnutls_datum_t key = {(unsigned char *)pem->key, (unsigned)strlen(pem->key)};
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t pk = NULL;
    gnutls_certificate_credentials_t cred = NULL;
    int rc = gnutls_x509_crt_init(&crt);
    if (rc == 0 && (rc = gnutls_x509_crt_import(crt, &cert, GNUTLS_X509_FMT_PEM)) < 0) {
        snprintf(err, errlen, "tls.cert_file \"%s\": not a PEM certificate: %s",
                 cfg->tls_cert_file, gnutls_strerror(rc));
        goto done;
    }
    if (rc == 0 && (rc = gnutls_x509_privkey_init(&pk)) == 0 &&
        (rc = gnutls_x509_privkey_import2(pk, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(err, errlen,
                 "tls.key_file \"%s\": not a PEM private key (or an encrypted one, which jobd "
                 "cannot read): %s",
                 cfg->tls_key_file, gnutls_strerror(rc));
        goto done;
    }
    if (rc == 0 && (rc = gnutls_certificate_allocate_credentials(&cred)) == 0 &&
        (rc = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM)) < 0) {
        if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
            snprintf(err, errlen,
                     "tls.key_file \"%s\": the key does not match the certificate of "
                     "tls.cert_file \"%s\"",
                     cfg->tls_key_file, cfg->tls_cert_file);
        else
            snprintf(err, errlen, "tls: the pair \"%s\" and \"%s\" is refused: %s",
                     cfg->tls_cert_file, cfg->tls_key_file, gnutls_strerror(rc));
        goto done;
    }
    if (rc < 0)
        snprintf(err, errlen, "tls: %s", gnutls_strerror(rc));
done:
    if (cred)
        gnutls_certificate_free_credentials(cred);
    if (pk)
        gnutls_x509_privkey_deinit(pk);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    return rc < 0 ? -1 : 0;
}

int tls_load(const config_t *cfg, tls_pem *pem, char *err, size_t errlen)
{
    size_t len;
    memset(pem, 0, sizeof *pem);
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "tls: this libmicrohttpd was built without TLS support");
        return -1;
    }
    if (!(pem->cert = tls_read("cert_file", cfg->tls_cert_file, &len, err, errlen)) ||
        !(pem->key = tls_read("key_file", cfg->tls_key_file, &len, err, errlen)) ||
        tls_check_pair(cfg, pem, err, errlen) != 0) {
        tls_pem_free(pem);
        return -1;
    }
    return 0;
}

/* tls.h - the certificate and key of HTTPS (tls.cert_file, tls.key_file):
 * read, checked with GnuTLS, and handed to libmicrohttpd as PEM text. */
#ifndef JOBD_TLS_H
#define JOBD_TLS_H

#include <stddef.h>

#include "config.h"

/* TLS 1.2 and 1.3 only (a GnuTLS priority string). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

typedef struct tls_pem {
    char *cert; /* owned, NUL-terminated PEM */
    char *key;  /* owned, NUL-terminated PEM; wiped when freed */
} tls_pem;

/* Reads cfg's tls.cert_file and tls.key_file into pem (free with
 * tls_pem_free) after checking that libmicrohttpd was built with TLS, that
 * each file reads and parses, and that the key belongs to the certificate.
 * 0, or -1 with err naming the file (or libmicrohttpd) and the reason. */
int tls_load(const config_t *cfg, tls_pem *pem, char *err, size_t errlen);

/* Frees what pem holds and empties it. */
void tls_pem_free(tls_pem *pem);

#endif

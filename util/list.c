/* list.c - the intrusive FIFO. */
#include "list.h"

void list_push(list_t *l, list_node *node)
{
    node->next = NULL;
    node->prev = l->tail;
    if (l->tail)
        l->tail->next = node;
    else
        l->head = node;
    l->tail = node;
    l->n++;
}

void list_remove(list_t *l, list_node *node)
{
    if (node->prev)
        node->prev->next = node->next;
    else
        l->head = node->next;
    if (node->next)
        node->next->prev = node->prev;
    else
        l->tail = node->prev;
    l->n--;
    node->prev = node->next = NULL;
}

/** The links a node of a `LinkedList` carries itself, so joining and leaving allocate nothing. */
export interface Link<N> {
  prev: N | undefined;
  next: N | undefined;
}

/** A doubly linked list whose nodes carry their links: O(1) append, and removal from anywhere. */
export class LinkedList<N extends Link<N>> {
  /** The oldest node. */
  head: N | undefined = undefined;
  private tail: N | undefined = undefined;

  push(node: N): N {
    node.prev = this.tail;
    node.next = undefined;
    if (this.tail === undefined) this.head = node;
    else this.tail.next = node;
    this.tail = node;
    return node;
  }

  /** Takes `node` out; false when it is not in the list (never added, or removed already). */
  remove(node: N): boolean {
    const { prev, next } = node;
    if (prev !== undefined) prev.next = next;
    else if (this.head === node) this.head = next;
    else return false;
    if (next !== undefined) next.prev = prev;
    else this.tail = prev;
    node.prev = node.next = undefined;
    return true;
  }
}

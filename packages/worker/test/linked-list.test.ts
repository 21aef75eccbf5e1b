import { describe, expect, it } from "vitest";
import { type Link, LinkedList } from "../src/linked-list.js";

interface Node extends Link<Node> {
  name: string;
}

const node = (name: string): Node => ({ name, prev: undefined, next: undefined });

function names(list: LinkedList<Node>): string[] {
  const out: string[] = [];
  for (let n = list.head; n !== undefined; n = n.next) out.push(n.name);
  return out;
}

describe("LinkedList", () => {
  it("appends in order and removes from the head, the middle and the tail", () => {
    const list = new LinkedList<Node>();
    const [a, b, c, d] = ["a", "b", "c", "d"].map(node) as [Node, Node, Node, Node];
    for (const n of [a, b, c, d]) list.push(n);
    expect(names(list)).toEqual(["a", "b", "c", "d"]);
    expect(list.remove(b)).toBe(true);
    expect(names(list)).toEqual(["a", "c", "d"]);
    expect(list.remove(d)).toBe(true);
    list.push(node("e"));
    expect(names(list)).toEqual(["a", "c", "e"]);
    expect(list.remove(a)).toBe(true);
    expect(names(list)).toEqual(["c", "e"]);
    expect([b.prev, b.next]).toEqual([undefined, undefined]);
  });

  it("removing a node twice, or one never added, changes nothing and says so", () => {
    const list = new LinkedList<Node>();
    const a = list.push(node("a"));
    expect(list.remove(a)).toBe(true);
    expect(list.remove(a)).toBe(false);
    expect(list.remove(node("stranger"))).toBe(false);
    expect(list.head).toBeUndefined();
    list.push(node("b"));
    expect(names(list)).toEqual(["b"]);
  });
});

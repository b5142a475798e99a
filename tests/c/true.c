/* A program that does nothing: what the library costs a process at start-up is
 * everything strace sees beyond the loader mapping it. */
int main(void)
{
    return 0;
}
